"""FeaturesDataset: loading, val carving, masks and every bad-input case (tiny npz fixtures)."""

import os

import numpy as np
import pytest
import torch

from mla_plugin.data import features
from mla_plugin.data.errors import DataError
from mla_plugin.data.features import FeaturesDataset

_read = features._read_npz


def _arrays(n, seed, classes=3):
    rng = np.random.default_rng(seed)
    return {
        "y": np.arange(n) % classes,
        "x_audio": rng.normal(size=(n, 4)).astype(np.float32),
        "x_text": rng.normal(size=(n, 3)).astype(np.float32),
    }


def _write(d, split, arrays):
    np.savez(d / f"{split}.npz", **arrays)
    return d / f"{split}.npz"


@pytest.fixture
def fdir(tmp_path):
    _write(tmp_path, "train", _arrays(20, 0))
    _write(tmp_path, "test", _arrays(10, 1))
    return tmp_path


def test_load_item_format(fdir):
    _write(fdir, "val", _arrays(6, 2))
    (fdir / "classes.txt").write_text("neg\nneu\npos\n")
    ds = FeaturesDataset(fdir, "test")
    assert len(ds) == 10 and ds.modalities == ["audio", "text"]
    assert ds.num_classes == 3 and ds.class_names == ["neg", "neu", "pos"]
    assert ds.feature_shapes == {"audio": (4,), "text": (3,)}
    item = ds[4]
    assert item["inputs"]["audio"].dtype == torch.float32 and item["inputs"]["audio"].shape == (4,)
    assert item["mask"].dtype == torch.bool and item["mask"].tolist() == [True, True]
    assert item["targets"].dtype == torch.long and item["targets"].item() == 1
    assert item["index"].item() == 4 and ds[-1]["index"].item() == 9
    assert np.allclose(item["inputs"]["text"].numpy(), _arrays(10, 1)["x_text"][4])
    assert len(FeaturesDataset(fdir, "val")) == 6 and len(FeaturesDataset(fdir, "train")) == 20
    assert FeaturesDataset(fdir, "train", modalities=["text"]).modalities == ["text"]


def test_num_classes_from_max_label_over_splits(fdir):
    _write(fdir, "test", {**_arrays(10, 1), "y": np.full(10, 4)})
    ds = FeaturesDataset(fdir, "train")
    assert ds.num_classes == 5 and ds.class_names == ["0", "1", "2", "3", "4"]


def test_val_carved_from_train(fdir):
    tr = FeaturesDataset(fdir, "train", val_fraction=0.25, seed=3)
    va = FeaturesDataset(fdir, "val", val_fraction=0.25, seed=3)
    assert len(tr) == 15 and len(va) == 5
    assert set(tr.source_rows) | set(va.source_rows) == set(range(20))
    assert not set(tr.source_rows) & set(va.source_rows)
    again = FeaturesDataset(fdir, "val", val_fraction=0.25, seed=3)
    assert np.array_equal(va.source_rows, again.source_rows)
    other = FeaturesDataset(fdir, "val", val_fraction=0.25, seed=4)
    assert not np.array_equal(va.source_rows, other.source_rows)


def test_given_masks_and_protocol_combined(fdir):
    a = _arrays(20, 0)
    m = np.ones(20, dtype=bool)
    m[[2, 5]] = False
    a["x_audio"][2] = np.nan  # absent cells may hold NaN: they are zero-filled
    _write(fdir, "train", {**a, "m_audio": m})
    ds = FeaturesDataset(fdir, "train", val_fraction=0.0)
    assert ds.mask[:, 0].tolist() == m.tolist()
    assert torch.all(ds[2]["inputs"]["audio"] == 0) and torch.all(ds[5]["inputs"]["audio"] == 0)
    ds = FeaturesDataset(fdir, "train", val_fraction=0.0, missing_rate=0.5, seed=1)
    assert not ds.mask[2, 0] and not ds.mask[5, 0]
    assert abs((~ds.mask).float().mean().item() - 0.5) < 0.1  # AND of given and protocol masks
    for j, mod in enumerate(ds.modalities):
        assert torch.all(ds.features[mod][~ds.mask[:, j]] == 0)


def test_protocol_masks_per_split(fdir):
    _write(fdir, "train", _arrays(400, 0))
    _write(fdir, "test", _arrays(400, 1))
    tr = FeaturesDataset(fdir, "train", missing_rate=0.3, val_fraction=0.0)
    te = FeaturesDataset(fdir, "test", missing_rate=0.3)
    assert abs((~tr.mask).float().mean().item() - 0.3) < 0.005
    assert not torch.equal(tr.mask, te.mask)
    assert torch.equal(te.mask, FeaturesDataset(fdir, "test", missing_rate=0.3).mask)


def test_bad_args(fdir):
    with pytest.raises(ValueError, match="split"):
        FeaturesDataset(fdir, "dev")
    with pytest.raises(ValueError, match="valid schemes"):
        FeaturesDataset(fdir, "train", mask_scheme="nope")
    with pytest.raises(ValueError, match="on_bad_sample"):
        FeaturesDataset(fdir, "train", on_bad_sample="ignore")
    with pytest.raises(DataError, match=r"requested modalities \['video'\]"):
        FeaturesDataset(fdir, "train", modalities=["video"])


def test_missing_dir_and_file(tmp_path, fdir):
    with pytest.raises(DataError, match="not found: .*nowhere"):
        FeaturesDataset(tmp_path / "nowhere", "train")
    (fdir / "test.npz").unlink()
    with pytest.raises(DataError, match=r"not found: .*test\.npz"):
        FeaturesDataset(fdir, "train")


def test_unreadable_npz(fdir):
    (fdir / "test.npz").write_bytes(b"not a zip file")
    with pytest.raises(DataError, match=r"cannot read feature file .*test\.npz") as e:
        FeaturesDataset(fdir, "train")
    # printed once: not chained to numpy's own error, which the message already quotes
    assert e.value.__cause__ is None and e.value.__suppress_context__


def test_no_y(fdir):
    a = _arrays(10, 1)
    del a["y"]
    _write(fdir, "test", a)
    with pytest.raises(DataError, match=r"test\.npz: missing key 'y'"):
        FeaturesDataset(fdir, "train")


def test_no_features(fdir):
    _write(fdir, "train", {"y": np.zeros(5, dtype=int), "feats": np.zeros((5, 2))})
    with pytest.raises(DataError, match=r"train\.npz: no feature keys 'x_<modality>'"):
        FeaturesDataset(fdir, "train")


def test_modalities_inconsistent(fdir):
    a = _arrays(10, 1)
    a["x_video"] = a.pop("x_text")
    _write(fdir, "test", a)
    with pytest.raises(DataError, match=r"test\.npz: modalities \['audio', 'video'\] differ"):
        FeaturesDataset(fdir, "train")


def test_dimension_mismatch(fdir):
    _write(fdir, "val", {**_arrays(6, 2), "x_text": np.zeros((6, 5), np.float32)})
    with pytest.raises(DataError, match=r"val\.npz: key 'x_text' has feature shape \(5,\)"):
        FeaturesDataset(fdir, "train")


def test_n_mismatch(fdir):
    _write(fdir, "test", {**_arrays(10, 1), "x_audio": np.zeros((9, 4), np.float32)})
    with pytest.raises(DataError, match=r"test\.npz: key 'x_audio' has 9 samples but 'y' has 10"):
        FeaturesDataset(fdir, "test")


def test_bad_mask_key(fdir):
    _write(fdir, "train", {**_arrays(20, 0), "m_audio": np.ones(19, bool)})
    with pytest.raises(DataError, match=r"train\.npz: key 'm_audio' must have shape"):
        FeaturesDataset(fdir, "train")
    _write(fdir, "train", {**_arrays(20, 0), "m_video": np.ones(20, bool)})
    with pytest.raises(DataError, match=r"'m_video' has no matching feature key"):
        FeaturesDataset(fdir, "train")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite_names_sample_and_modality(fdir, bad):
    a = _arrays(10, 1)
    a["x_text"][7, 1] = bad
    a["x_audio"][8, 0] = bad
    _write(fdir, "test", a)
    what = "a NaN" if np.isnan(bad) else "an inf"  # no float32-overflow hint for either
    with pytest.raises(
        DataError,
        match=rf"test\.npz: sample 7 has NaN/inf features in key 'x_text' \({what} in the "
        r"file\) \(2 bad samples",
    ):
        FeaturesDataset(fdir, "test")
    FeaturesDataset(fdir, "train")  # other splits are not NaN-checked


def test_nonfinite_skip(fdir):
    a = _arrays(10, 1)
    a["x_text"][[3, 7]] = np.nan
    _write(fdir, "test", a)
    with pytest.warns(UserWarning, match="skipped 2 samples"):
        ds = FeaturesDataset(fdir, "test", on_bad_sample="skip")
    assert ds.skipped == 2 and len(ds) == 8
    assert 3 not in ds.source_rows and 7 not in ds.source_rows
    assert torch.isfinite(ds.features["text"]).all()
    assert ds[7]["index"].item() == 7


def test_labels_out_of_range(fdir):
    (fdir / "classes.txt").write_text("a\nb\n")
    with pytest.raises(
        DataError, match=r"train\.npz: key 'y' sample 2 has label 2 outside \[0, 2\)"
    ):
        FeaturesDataset(fdir, "train")
    (fdir / "classes.txt").unlink()
    _write(fdir, "test", {**_arrays(10, 1), "y": np.array([0, 1, 2, 0, -1, 0, 0, 0, 0, 0])})
    with pytest.raises(DataError, match=r"test\.npz: key 'y' sample 4 has label -1"):
        FeaturesDataset(fdir, "train")


def test_non_integer_labels(fdir):
    _write(fdir, "test", {**_arrays(10, 1), "y": np.linspace(0, 1, 10)})
    with pytest.raises(DataError, match=r"test\.npz: key 'y' sample 1 has non-integer label"):
        FeaturesDataset(fdir, "train")


def test_empty_split(fdir):
    _write(
        fdir,
        "test",
        {"y": np.zeros(0, int), "x_audio": np.zeros((0, 4)), "x_text": np.zeros((0, 3))},
    )
    with pytest.raises(DataError, match=r"test\.npz: split 'test' is empty"):
        FeaturesDataset(fdir, "test")
    with pytest.raises(DataError, match=r"train\.npz: split 'val' is empty .*val_fraction"):
        FeaturesDataset(fdir, "val", val_fraction=0.0)


def _age(path, seconds=60):
    """Backdate ``path``'s mtime, as a file written before the run."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - int(seconds * 1e9)))


def test_settled_files_are_read_once_per_process(fdir, monkeypatch):
    """A settled file is read once (the memo of a warm worker's cells); its arrays are
    read-only, and a batch from ``get_batch`` equals the items one by one."""
    reads = []
    monkeypatch.setattr(features, "_memo", {})
    monkeypatch.setattr(features, "_read_npz", lambda p: reads.append(p) or _read(p))
    for split in ("train", "test"):
        _age(fdir / f"{split}.npz")
    a, b = FeaturesDataset(fdir, "train"), FeaturesDataset(fdir, "test")
    assert len(reads) == 2  # train.npz and test.npz, once each for both splits
    assert FeaturesDataset(fdir, "train").features["audio"].equal(a.features["audio"])
    assert len(reads) == 2
    assert all(not x.flags.writeable for f in features._memo.values() for x in f.values())
    batch = b.get_batch([3, 0, -1])
    assert batch["index"].tolist() == [3, 0, 9]
    for k, i in enumerate([3, 0, 9]):
        assert batch["inputs"]["text"][k].equal(b[i]["inputs"]["text"])
        assert batch["targets"][k] == b[i]["targets"] and batch["mask"][k].equal(b[i]["mask"])


def test_a_rewritten_file_is_read_again(fdir, monkeypatch):
    """A rewrite is seen: a new mtime (or size) misses the memo, and a file modified within
    the settle time is never kept (a same-size rewrite within the clock's granularity)."""
    monkeypatch.setattr(features, "_memo", {})
    _age(fdir / "train.npz")
    first = FeaturesDataset(fdir, "train").features["audio"]
    _write(fdir, "train", _arrays(20, 5))  # same shapes and size, other values, now
    ds = FeaturesDataset(fdir, "train")
    assert not ds.features["audio"].equal(first)
    assert np.allclose(ds.features["audio"], _arrays(20, 5)["x_audio"][ds.source_rows])
    _write(fdir, "train", _arrays(20, 6))  # again within the settle time: not memoised
    ds = FeaturesDataset(fdir, "train")
    assert np.allclose(ds.features["audio"], _arrays(20, 6)["x_audio"][ds.source_rows])


def test_memo_is_bounded(fdir, monkeypatch):
    monkeypatch.setattr(features, "_memo", {})
    monkeypatch.setattr(features, "MEMO_BYTES", 1)
    for split in ("train", "test"):
        _age(fdir / f"{split}.npz")
    FeaturesDataset(fdir, "train")
    assert features._memo == {}
