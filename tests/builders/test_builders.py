"""The datasets through MMF, end to end (subprocesses on this source tree):

* ``avdigits`` trains on the real FSDD recordings through ``mmf_run`` and writes metrics.json;
* a ``features`` directory trains with every registered method, its modalities, class count
  and encoder input sizes following the files (``modalities: null``, ``in_dim: auto``);
* tiny MVSA / CREMA-D / IEMOCAP folders in their owners' layouts train through MMF;
* the missing-modality protocol reaches the Samples' ``mask`` through config;
* absent data and bad input stop the run before training with a clear message.

Several runs share one Python process (``mmf_cli.run.run``) to save start-up time.
"""

import json
import os
import subprocess
import sys
import textwrap
import time
import wave

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from tests.support import BIN, REPO, subprocess_env

CONFIGS = os.path.join(REPO, "projects", "mla", "configs")


def _mmf_run(args, timeout=300, **env):
    return subprocess.run(
        [os.path.join(BIN, "mmf_run")] + list(args),
        cwd=REPO,
        env=subprocess_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


DRIVER = textwrap.dedent("""
    import json, sys, traceback
    from mmf_cli.run import run
    for name, opts in json.loads(sys.argv[1]):
        try:
            run(opts=opts)
            print("RUN-OK", name, flush=True)
        except Exception as exc:  # noqa: BLE001
            print("RUN-ERROR", name, type(exc).__name__, json.dumps(str(exc)), flush=True)
""")


def _drive(runs, timeout=400):
    """Run several ``mmf_run`` jobs in one process; returns {name: "ok" | (error type, message)}
    and the full output."""
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(runs)],
        cwd=REPO,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    out = {}
    for line in proc.stdout.splitlines():
        if line.startswith("RUN-OK "):
            out[line.split()[1]] = "ok"
        elif line.startswith("RUN-ERROR "):
            _, name, kind, msg = line.split(" ", 3)
            out[name] = (kind, json.loads(msg))
    assert len(out) == len(runs), proc.stdout[-3000:] + proc.stderr[-5000:]
    return out, proc.stdout + proc.stderr


def _metrics(save_dir):
    with open(os.path.join(save_dir, "metrics.json")) as fh:
        return json.load(fh)


# -------------------------------------------------------------------- fixtures
def write_features(d, n_train=96, n_test=48, nan=False, bad_label=False):
    rng = np.random.default_rng(0)
    dims = {"acoustic": (6,), "visual": (4,), "lexical": (2, 3)}
    mu = {m: rng.normal(size=(3,) + s) for m, s in dims.items()}
    os.makedirs(d, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        y = rng.integers(0, 3, n)
        arrays = {"y": y, "m_visual": rng.random(n) > 0.2}
        for m, s in dims.items():
            arrays[f"x_{m}"] = (2 * mu[m][y] + rng.normal(size=(n,) + s)).astype(np.float32)
        if nan and split == "train":
            arrays["x_acoustic"][5, 2] = np.nan
        if bad_label and split == "test":
            arrays["y"][7] = 3
        np.savez(os.path.join(d, f"{split}.npz"), **arrays)
    with open(os.path.join(d, "classes.txt"), "w") as fh:
        fh.write("negative\nneutral\npositive\n")
    return d


def write_mvsa(root, n=30):
    from PIL import Image

    os.makedirs(os.path.join(root, "data"))
    lines = ["ID\ttext,image"]
    words = ["awful day", "just a day", "lovely day"]
    for i in range(1, n + 1):
        y = i % 3
        Image.fromarray(np.full((12, 12, 3), 80 * y, np.uint8)).save(
            os.path.join(root, "data", f"{i}.jpg")
        )
        with open(os.path.join(root, "data", f"{i}.txt"), "w") as fh:
            fh.write(f"tweet {i}: {words[y]} #mood")
        lines.append(f"{i}\t{['negative', 'neutral', 'positive'][y]},neutral")
    with open(os.path.join(root, "labelResultAll.txt"), "w") as fh:
        fh.write("\n".join(lines) + "\n")


def _wav(path, freq, seconds=0.25, rate=16000):
    t = np.arange(int(seconds * rate)) / rate
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((0.3 * np.sin(2 * np.pi * freq * t) * 32767).astype("<i2").tobytes())


def write_cremad(root, frames):
    from PIL import Image

    os.makedirs(os.path.join(root, "AudioWAV"))
    for a in range(4):
        for k, e in enumerate(["ANG", "DIS", "FEA", "HAP", "NEU", "SAD"]):
            clip = f"{1001 + a}_IEO_{e}_MD"
            _wav(os.path.join(root, "AudioWAV", f"{clip}.wav"), 200 + 80 * k)
            os.makedirs(os.path.join(frames, clip))
            for f in range(3):
                Image.fromarray(np.full((12, 12, 3), 40 * k, np.uint8)).save(
                    os.path.join(frames, clip, f"{f:05d}.jpg")
                )


TINY_BERT = [
    "multimodal.encoders.text.params.hidden_size=16",
    "multimodal.encoders.text.params.num_layers=1",
    "multimodal.encoders.text.params.num_heads=2",
    "multimodal.encoders.text.params.intermediate_size=32",
    "multimodal.encoders.text.params.out_dim=512",
]


# ----------------------------------------------------------------------- tests
@pytest.mark.subprocess
@pytest.mark.usefixtures("fsdd")  # absent: fails with set-up steps
def test_avdigits_trains_on_real_recordings(tmp_path):
    save = str(tmp_path / "save")
    proc = _mmf_run(
        [
            f"config={CONFIGS}/avdigits.yaml",
            f"env.save_dir={save}",
            "training.max_epochs=2",
            "dataset_config.avdigits.max_per_class=6",
            f"dataset_config.avdigits.cache_dir={tmp_path / 'cache'}",
        ]
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    m = _metrics(save)
    assert (
        m["dataset"] == "avdigits"
        and m["method"] == "mla"
        and m["modalities"] == ["audio", "image"]
    )
    assert set(m["test"]) == {"multi", "audio", "image"}
    assert all(0.0 <= v <= 1.0 for v in m["test"].values())
    assert (
        "Training mla on avdigits: 2 epochs of 1 batches" in proc.stdout + proc.stderr
    )  # 60 clips


@pytest.mark.subprocess
def test_features_directory_trains_with_every_registered_method(tmp_path):
    from mmf.common.registry import registry

    import mla_plugin

    mla_plugin.register()

    methods = sorted(registry.mapping["model_name_mapping"])
    ours = {"mla", "concat", "mla_late_fusion"}
    assert ours <= set(methods)
    methods = [
        m
        for m in methods
        if m in ours or registry.get_model_class(m).__module__.startswith("mla_plugin")
    ]
    data = write_features(str(tmp_path / "feats"))
    runs = [
        (
            m,
            [
                f"config={CONFIGS}/features.yaml",
                f"model={m}",
                f"dataset_config.features.data_dir={data}",
                "training.max_epochs=2",
                "dataset_config.features.missing_rate=0.2",
                f"env.save_dir={tmp_path / m}",
            ],
        )
        for m in methods
    ]
    results, log = _drive(runs)
    # AUG compares two modalities (docs/baselines.md "aug"): three are refused before training
    two_only = {m for m in methods if m == "aug"}
    assert {m: r for m, r in results.items() if m not in two_only} == {
        m: "ok" for m in methods if m not in two_only
    }, log[-4000:]
    for m in two_only:
        kind, message = results[m]
        assert kind == "ValueError" and f"model_config.{m}.modalities" in message, results[m]
    for m in (m for m in methods if m not in two_only):
        metrics = _metrics(str(tmp_path / m))
        assert metrics["modalities"] == ["acoustic", "visual", "lexical"]  # file order
        assert metrics["dataset"] == "features" and metrics["method"] == m
    state = torch.load(
        str(tmp_path / "mla" / "mla_final.pth"), map_location="cpu", weights_only=True
    )
    assert state["encoders.lexical.net.0.weight"].shape == (128, 6)  # in_dim auto: 2 x 3 flattened
    assert state["encoders.acoustic.net.0.weight"].shape == (128, 6)
    assert state["head.weight"].shape == (3, 128)  # num_classes from classes.txt


@pytest.mark.subprocess
@pytest.mark.slow
def test_paper_dataset_layouts_train_through_mmf(tmp_path):
    write_mvsa(str(tmp_path / "MVSA_Single"))
    write_cremad(str(tmp_path / "CREMA-D"), str(tmp_path / "frames"))
    common = ["training.max_epochs=1", "training.batch_size=32"]
    runs = [
        (
            "mvsa",
            [
                f"config={CONFIGS}/mvsa.yaml",
                f"dataset_config.mvsa.data_dir={tmp_path / 'MVSA_Single'}",
                f"dataset_config.mvsa.cache_dir={tmp_path / 'c_mvsa'}",
                "dataset_config.mvsa.image_size=16",
                "dataset_config.mvsa.max_length=8",
                "dataset_config.mvsa.tokenizer=no-local-tokenizer",
                "dataset_config.mvsa.missing_rate=0.3",
                f"env.save_dir={tmp_path / 'mvsa'}",
            ]
            + TINY_BERT
            + common,
        ),
        (
            "cremad",
            [
                f"config={CONFIGS}/cremad.yaml",
                f"dataset_config.cremad.data_dir={tmp_path / 'CREMA-D'}",
                f"dataset_config.cremad.frames_dir={tmp_path / 'frames'}",
                "model=concat",
                f"dataset_config.cremad.cache_dir={tmp_path / 'c_cre'}",
                "dataset_config.cremad.image_size=16",
                "dataset_config.cremad.mel_bins=16",
                "dataset_config.cremad.target_length=32",
                f"env.save_dir={tmp_path / 'cremad'}",
            ]
            + common,
        ),
    ]
    results, log = _drive(runs)
    assert results == {"mvsa": "ok", "cremad": "ok"}, log[-4000:]
    mv, cre = _metrics(str(tmp_path / "mvsa")), _metrics(str(tmp_path / "cremad"))
    assert mv["modalities"] == ["text", "image"] and set(mv["test"]) == {"multi", "text", "image"}
    assert cre["modalities"] == ["audio", "video"] and cre["method"] == "concat"
    assert (
        len(list((tmp_path / "c_cre" / "fbank").glob("*.npy"))) == 24
    )  # preprocessed before training


@pytest.mark.subprocess
def test_missing_data_stops_before_training_with_instructions(tmp_path):
    t0 = time.time()
    proc = _mmf_run(
        [f"config={CONFIGS}/mvsa.yaml", f"env.save_dir={tmp_path / 's'}"],
        MLA_MVSA_DIR=str(tmp_path / "no_mvsa_here"),
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and time.time() - t0 < 120
    assert "DataError: mvsa: data directory not found: " + str(tmp_path / "no_mvsa_here") in out
    assert "labelResultAll.txt" in out and "dataset_config.mvsa.data_dir" in out
    assert "Training mla" not in out and not os.path.exists(tmp_path / "s" / "metrics.json")


@pytest.mark.subprocess
def test_bad_inputs_fail_before_training(tmp_path):
    good = write_features(str(tmp_path / "good"))
    nan = write_features(str(tmp_path / "nan"), nan=True)
    label = write_features(str(tmp_path / "label"), bad_label=True)
    base = [f"config={CONFIGS}/features.yaml", "training.max_epochs=1"]
    runs = [
        (
            "nan",
            base + [f"dataset_config.features.data_dir={nan}", f"env.save_dir={tmp_path / 'a'}"],
        ),
        (
            "label",
            base + [f"dataset_config.features.data_dir={label}", f"env.save_dir={tmp_path / 'b'}"],
        ),
        (
            "in_dim",
            base
            + [
                f"dataset_config.features.data_dir={good}",
                f"env.save_dir={tmp_path / 'c'}",
                "multimodal.encoders.default.params.in_dim=5",
            ],
        ),
        (
            "modality",
            base
            + [
                f"dataset_config.features.data_dir={good}",
                f"env.save_dir={tmp_path / 'd'}",
                "dataset_config.features.modalities=[acoustic,smell]",
            ],
        ),
        ("no_dir", base + [f"env.save_dir={tmp_path / 'e'}"]),
        (
            "skip",
            base
            + [
                f"dataset_config.features.data_dir={nan}",
                f"env.save_dir={tmp_path / 'f'}",
                "dataset_config.features.on_bad_sample=skip",
            ],
        ),
    ]
    results, log = _drive(runs)
    assert results["skip"] == "ok", log[-3000:]
    assert (
        results["nan"][0] == "DataError"
        and "train.npz: sample 5 has NaN/inf features in key 'x_acoustic'" in results["nan"][1]
    )
    assert "test.npz: key 'y' sample 7 has label 3 outside [0, 3)" in results["label"][1]
    assert (
        "modality 'acoustic' has features of shape (6,) (6 values) but multimodal.encoders.acoustic."
        "params.in_dim is 5"
    ) in results["in_dim"][1]
    assert "requested modalities ['smell'] not available" in results["modality"][1]
    assert "no data directory given; pass dataset_config.features.data_dir" in results["no_dir"][1]
    before_skip = log.split("RUN-ERROR no_dir")[0]
    assert "Training mla on features" not in before_skip  # the failing runs stopped before training
    for d in "abcde":
        assert not os.path.exists(tmp_path / d / "metrics.json")


def test_missing_rate_reaches_sample_masks(tmp_path):
    """``missing_rate``/``mask_scheme`` from config -> the builder's Samples carry ``mask``;
    the realised rate is within tolerance of eta, train/val/test are independent draws."""
    from mmf.common.registry import registry

    import mla_plugin

    mla_plugin.register()

    data = write_features(str(tmp_path / "f"), n_train=400, n_test=300)
    cfg = OmegaConf.load(os.path.join(REPO, "mla_plugin", "configs", "datasets", "features.yaml"))
    dc = cfg.dataset_config.features
    dc.data_dir, dc.missing_rate, dc.val_fraction = data, 0.4, 0.25
    masks = {}
    for split in ("train", "val", "test"):
        ds = registry.get_builder_class("features")().load_dataset(dc, split)
        sample = ds[0]
        assert sample.mask.dtype == torch.bool and sample.mask.shape == (3,)
        masks[split] = torch.stack([ds[i].mask for i in range(len(ds))])
    for split, m in masks.items():
        # eta = 0.4 from the protocol (cpm_atleast1), AND the file's own m_visual (~20 % absent)
        rate = 1 - m.float().mean().item()
        assert 0.4 <= rate <= 0.5, (split, rate)
    acoustic = torch.cat([m[:, 0] for m in masks.values()])  # no file mask: the protocol alone
    assert abs((~acoustic).float().mean().item() - 0.4) < 0.06
    assert len(masks["train"]) == 300 and len(masks["val"]) == 100 and len(masks["test"]) == 300
    assert not torch.equal(masks["val"][:50], masks["test"][:50])  # independent draws
    dc.mask_scheme, dc.missing_rate = "bernoulli", 0.3
    ds = registry.get_builder_class("features")().load_dataset(dc, "test")
    acoustic = torch.stack([ds[i].mask for i in range(len(ds))])[:, 0]
    assert abs((~acoustic).float().mean().item() - 0.3) < 0.08
    dc.mask_scheme = "coin_flip"
    with pytest.raises(ValueError, match="unknown mask scheme 'coin_flip'"):
        registry.get_builder_class("features")().load_dataset(dc, "test")


def test_fill_multimodal_config_rules():
    from mla_plugin.builders.auto import fill_multimodal_config
    from mla_plugin.data.errors import DataError

    class Reader:
        modalities = ["a", "b"]
        num_classes = 4
        feature_shapes = {"a": (3, 2), "b": (5,)}

    root = OmegaConf.create(
        {
            "multimodal": {
                "modalities": None,
                "num_classes": None,
                "encoders": {
                    "default": {"type": "mlp", "params": {"in_dim": "auto", "out_dim": 8}},
                    "b": {"type": "identity", "params": {"in_dim": "auto"}},
                },
            },
            "model_config": {
                "x": {
                    "modalities": "${multimodal.modalities}",
                    "encoders": "${multimodal.encoders}",
                }
            },
        }
    )
    fill_multimodal_config(root, Reader(), "t")
    assert root.model_config.x.modalities == ["a", "b"] and root.multimodal.num_classes == 4
    assert (
        root.model_config.x.encoders.a.params.in_dim == 6
        and root.multimodal.encoders.b.params.in_dim == 5
    )
    assert root.multimodal.encoders.b.type == "identity"
    root.multimodal.num_classes = 3
    with pytest.raises(DataError, match="num_classes is 3 but the data has 4 classes"):
        fill_multimodal_config(root, Reader(), "t")
    bare = OmegaConf.create({"multimodal": {"modalities": None, "num_classes": 4, "encoders": {}}})
    with pytest.raises(DataError, match="no encoder for modality 'a'"):
        fill_multimodal_config(bare, Reader(), "t")
    conv = OmegaConf.create(
        {
            "multimodal": {
                "modalities": ["a"],
                "num_classes": 4,
                "encoders": {"a": {"type": "conv", "params": {"in_channels": 2}}},
            }
        }
    )

    class Img(Reader):
        feature_shapes = {"a": (1, 8, 8)}

    with pytest.raises(
        DataError, match=r"inputs of shape \(1, 8, 8\) \(1 channels\) but .*in_channels is 2"
    ):
        fill_multimodal_config(conv, Img(), "t")


@pytest.mark.usefixtures("fsdd")  # absent: fails with set-up steps
def test_avdigits_builder_standardises_present_audio_only(tmp_path):
    from mmf.common.registry import registry

    import mla_plugin

    mla_plugin.register()

    cfg = OmegaConf.load(os.path.join(REPO, "mla_plugin", "configs", "datasets", "avdigits.yaml"))
    dc = cfg.dataset_config.avdigits
    dc.cache_dir, dc.max_per_class, dc.audio_mel_bins, dc.audio_frames = str(tmp_path), 3, 20, 50
    dc.missing_rate = 0.3
    ds = registry.get_builder_class("avdigits")().load_dataset(dc, "test")
    raw = ds.reader.reader  # the data layer's reader under the standardising wrapper
    mean, std = dc.audio_norm
    for i in range(len(ds)):
        sample = ds[i]
        expected = (
            (raw.features["audio"][i] - mean) / std if raw.mask[i, 0] else torch.zeros(1, 50, 20)
        )
        assert torch.allclose(sample.audio, expected) and torch.equal(sample.mask, raw.mask[i])
        assert torch.equal(sample.image, raw.features["image"][i])
    assert (~raw.mask).any()
    batch = ds.__getitems__([2, 0, 1])  # the DataLoader's batched path standardises too
    assert torch.allclose(batch["audio"][1], ds[0].audio) and torch.equal(
        batch["mask"][2], ds[1].mask
    )
    dc.audio_norm = None
    plain = registry.get_builder_class("avdigits")().load_dataset(dc, "test")
    assert torch.equal(plain[0].audio, raw.features["audio"][0])
