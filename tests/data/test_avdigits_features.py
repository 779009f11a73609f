"""avdigits as pretrained features (:mod:`mla_plugin.data.avdigits_features`): the build,
its manifest (a matching build is not redone, a changed file is rebuilt), and training on
it through the ``features`` dataset."""

import json
import os

import numpy as np
import pytest

from mla_plugin.data import avdigits_features
from mla_plugin.data.avdigits import AVDigitsDataset
from tests.support import make_trainer


def test_build_pairs_like_avdigits_skips_when_complete_and_trains(tmp_path):
    out = tmp_path / "avf"
    logs = []
    small = dict(max_per_class=2, image_size=32, log=logs.append)
    avdigits_features.build(out, **small)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["request"]["encoders"]["audio"].startswith("openwakeword-0.5.1")
    assert "CC BY-NC-SA" in manifest["licences"]["speech_encoder"]
    prov = np.load(out / "provenance.npz")
    for split in ("train", "val", "test"):
        with np.load(out / f"{split}.npz") as z:
            assert z["x_audio"].shape == (20, 192) and z["x_image"].shape == (20, 1280)
            assert np.isfinite(z["x_audio"]).all() and np.isfinite(z["x_image"]).all()
            _, _, clips, rows = AVDigitsDataset.pairing(split, max_per_class=2)
            assert z["y"].tolist() == [c[1] for c in clips]  # avdigits' own pairs
            assert prov[f"{split}_digits_row"].tolist() == rows.tolist()
    # the same image row gives the same feature wherever it is paired
    with np.load(out / "train.npz") as z:
        rows = prov["train_digits_row"]
        first = {r: i for i, r in reversed(list(enumerate(rows)))}
        assert all(
            np.array_equal(z["x_image"][i], z["x_image"][first[r]]) for i, r in enumerate(rows)
        )
        before = z["x_audio"].copy()

    logs.clear()
    avdigits_features.build(out, **small)  # complete: nothing is redone
    assert logs == [f"avdigits features in {out} are up to date ({out / 'manifest.json'})"]
    np.savez(out / "test.npz", y=np.zeros(3, dtype=np.int64))  # a changed file
    logs.clear()
    avdigits_features.build(out, **small)
    assert logs[0].startswith(f"rebuilding {out}")
    with np.load(out / "train.npz") as z:
        assert np.array_equal(z["x_audio"], before)  # the same features, bit for bit
    with np.load(out / "test.npz") as z:
        assert z["x_audio"].shape == (20, 192)

    trainer = make_trainer(
        str(tmp_path / "save"),
        f"dataset_config.features.data_dir={out}",
        "training.max_epochs=1",
        config="projects/mla/configs/features.yaml",
    )
    assert trainer.modalities == ["audio", "image"]
    trainer.train()
    with open(os.path.join(tmp_path, "save", "metrics.json")) as f:
        metrics = json.load(f)
    assert set(metrics["test"]) == {"multi", "audio", "image"}


def test_cli_refuses_bad_arguments(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        avdigits_features.main(["--out", str(tmp_path / "o"), "--max-per-class", "0"])
    assert exc.value.code == 2 and "--max-per-class must be >= 1" in capsys.readouterr().err
    afile = tmp_path / "file"
    afile.write_text("x")
    assert avdigits_features.main(["--out", str(afile)]) == 2
    assert f"--out {afile} exists and is not a folder" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
