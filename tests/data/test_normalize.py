"""``normalize: none | standard | l2`` in the features builder: train-split statistics of
present samples, applied to val/test, zero-variance features, saved with the run."""

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from mla_plugin.builders import normalize as bnorm
from mla_plugin.builders.features import FeaturesBuilder
from mla_plugin.data.normalize import STD_FLOOR, parse_normalize

YAML = "mla_plugin/configs/datasets/features.yaml"


def _write(d, split, n, seed, shift):
    rng = np.random.default_rng(seed)
    audio = rng.normal(5.0 + shift, 3.0, size=(n, 4)).astype(np.float32)
    audio[:, 3] = 7.0  # zero variance in train
    m_text = np.ones(n, dtype=bool)
    m_text[::4] = False
    text = rng.normal(-2.0, 0.5, size=(n, 3)).astype(np.float32)
    text[~m_text] = 1e6  # absent cells: must not enter the statistics
    np.savez(d / f"{split}.npz", y=np.arange(n) % 3, x_audio=audio, x_text=text, m_text=m_text)
    return audio, text, m_text


@pytest.fixture
def setup(tmp_path, monkeypatch):
    data = tmp_path / "feats"
    data.mkdir()
    raw = {
        s: _write(data, s, n, i, 10.0 * i) for i, (s, n) in enumerate([("train", 40), ("test", 12)])
    }
    save = tmp_path / "save"

    class Registry:
        @staticmethod
        def get(name, no_warning=False):
            return OmegaConf.create({"env": {"save_dir": str(save)}})

    monkeypatch.setattr(bnorm, "registry", Registry)

    def reader(split, normalize):
        cfg = OmegaConf.load(YAML).dataset_config.features
        cfg.data_dir, cfg.normalize = str(data), normalize
        return FeaturesBuilder().make_reader(cfg, split)

    return raw, save, reader


def test_default_is_standard_on_train_statistics(setup):
    raw, save, reader = setup
    assert OmegaConf.load(YAML).dataset_config.features.normalize == "standard"
    tr = reader("train", "standard")
    a, t, m = (v[tr.source_rows] for v in raw["train"])  # val is carved out of train.npz
    mean, std = a.astype(np.float64).mean(0), a.astype(np.float64).std(0)
    std[3] = 1.0  # constant feature: only centred
    assert np.allclose(tr.features["audio"].numpy(), (a - mean) / std, atol=1e-5)
    assert tr.features["audio"][:, 3].abs().max() == 0
    tt = t[m].astype(np.float64)
    assert np.allclose(
        tr.features["text"][tr.mask[:, 1]].numpy(), (tt - tt.mean(0)) / tt.std(0), atol=1e-5
    )
    assert torch.all(tr.features["text"][~tr.mask[:, 1]] == 0)  # absent stays zero
    saved = np.load(save / bnorm.STATS_FILE)
    assert np.allclose(saved["audio_mean"], mean) and saved["audio_std"][3] == 1.0
    assert sorted(saved["modes"]) == ["audio=standard", "text=standard"]
    # test uses the train statistics (its own mean is ~10 higher, so it is not centred)
    te = reader("test", "standard")
    a2 = raw["test"][0]
    assert np.allclose(te.features["audio"].numpy(), (a2 - mean) / std, atol=1e-4)
    assert te.features["audio"][:, 0].mean() > 2


def test_per_modality_l2_and_none(setup):
    raw, _, reader = setup
    te = reader("test", {"audio": "l2"})
    a = raw["test"][0]
    assert np.allclose(te.features["audio"].numpy(), a / np.linalg.norm(a, axis=1, keepdims=True))
    t, m = raw["test"][1], raw["test"][2]
    assert np.array_equal(te.features["text"][te.mask[:, 1]].numpy(), t[m])  # none: raw


def test_bad_specs_name_the_key():
    with pytest.raises(ValueError, match=r"features.normalize: expected one of .*'zscore'"):
        parse_normalize("zscore", ["a"], "dataset_config.features.normalize")
    with pytest.raises(ValueError, match=r"unknown modality 'video'; the data has \['a'\]"):
        parse_normalize({"video": "l2"}, ["a"], "dataset_config.features.normalize")
    with pytest.raises(ValueError, match=r"normalize.a: expected one of"):
        parse_normalize({"a": "max"}, ["a"], "dataset_config.features.normalize")
    assert parse_normalize("none", ["a", "b"], "k") == {"a": "none", "b": "none"}
    assert parse_normalize("b:l2", ["a", "b"], "k") == {"a": "none", "b": "l2"}
    assert STD_FLOOR < 1e-3


def test_config_validation_accepts_a_mode_or_a_mapping():
    from mla_plugin.config_validation import ConfigError, check_section, defaults_of

    defaults = defaults_of(YAML, "dataset_config.features")
    for value in ("l2", {"audio": "l2", "text": "none"}):
        check_section(
            "dataset_config.features", {"normalize": value}, defaults, FeaturesBuilder.OPEN_KEYS
        )
    with pytest.raises(ConfigError, match="normalize"):
        check_section("dataset_config.features", {"normalize": {"a": "l2"}}, defaults)
