"""avdigits on the real FSDD copy (small max_per_class, tmp cache) and the audio helpers."""

import wave

import numpy as np
import pytest
import torch

from mla_plugin.data import fsdd
from mla_plugin.data.audio import kaldi_fbank, load_wav
from mla_plugin.data.avdigits import AVDigitsDataset
from mla_plugin.data.errors import DataError

FSDD = fsdd.default_fsdd_dir()
needs_fsdd = pytest.mark.usefixtures("fsdd")  # absent: fails with set-up steps
SMALL = dict(max_per_class=2, audio_mel_bins=20, audio_frames=50)


def _write_wav(path, signal, rate=8000):
    """Write int16 PCM; signal is [T] or [T, C] in [-1, 1]."""
    signal = np.atleast_2d(signal.T).T
    with wave.open(str(path), "wb") as w:
        w.setnchannels(signal.shape[1])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((signal * 32767).astype("<i2").tobytes())


def test_kaldi_fbank_sine_shape_pad_truncate(tmp_path):
    t = np.arange(4000) / 8000.0  # 0.5 s
    _write_wav(tmp_path / "sine.wav", 0.5 * np.sin(2 * np.pi * 440 * t))
    wav, sr = load_wav(tmp_path / "sine.wav")
    assert sr == 8000 and wav.shape == (1, 4000) and wav.dtype == torch.float32
    assert abs(wav.abs().max().item() - 0.5) < 1e-3
    fb = kaldi_fbank(wav, sr, num_mel_bins=40, target_length=100)
    assert fb.shape == (100, 40)
    n = (4000 - 200) // 80 + 1  # 25 ms window, 10 ms shift, snip_edges
    assert torch.all(fb[n:] == 0) and torch.all(fb[:n].abs().sum(dim=1) > 0)
    short = kaldi_fbank(wav, sr, num_mel_bins=40, target_length=20)
    assert short.shape == (20, 40) and torch.equal(short, fb[:20])
    assert kaldi_fbank(wav[:, :50], sr, 40, 5).shape == (5, 40)  # shorter than one window


def test_load_wav_stereo_first_channel_and_errors(tmp_path):
    sig = np.stack([np.full(800, 0.25), np.full(800, -0.5)], axis=1)
    _write_wav(tmp_path / "st.wav", sig)
    wav, _ = load_wav(tmp_path / "st.wav")
    assert wav.shape == (2, 800) and abs(wav[1].mean().item() + 0.5) < 1e-3
    with pytest.raises(DataError, match="not found: .*nope.wav"):
        load_wav(tmp_path / "nope.wav")
    (tmp_path / "bad.wav").write_bytes(b"RIFF garbage")
    with pytest.raises(DataError, match="cannot read WAV file .*bad.wav"):
        load_wav(tmp_path / "bad.wav")


def test_missing_fsdd_dir(tmp_path):
    with pytest.raises(DataError, match=r"not found: .*no_fsdd.*CC BY-SA 4\.0.*free-spoken-digit"):
        AVDigitsDataset("train", fsdd_dir=tmp_path / "no_fsdd", cache_dir=tmp_path)


@needs_fsdd
def test_audio_splits_by_take():
    _, clips = fsdd.list_fsdd(FSDD)
    parts = {
        s: AVDigitsDataset._audio_split(clips, s, 0, 0.1, None) for s in ("train", "val", "test")
    }
    assert [len(parts[s]) for s in ("train", "val", "test")] == [2430, 270, 300]
    assert all(c[3] <= 4 for c in parts["test"])
    assert all(c[3] >= 5 for c in parts["train"] + parts["val"])
    names = {s: {c[0] for c in p} for s, p in parts.items()}
    assert not names["train"] & names["val"] and len(set.union(*names.values())) == 3000


def test_image_pools_disjoint():
    _, labels = AVDigitsDataset._load_digits()
    pools = AVDigitsDataset._image_pools(labels, 0, 0.1)
    sets = {s: set(np.concatenate(p)) for s, p in pools.items()}
    assert not sets["train"] & sets["val"] and not sets["train"] & sets["test"]
    assert not sets["val"] & sets["test"] and len(set.union(*sets.values())) == 1797
    assert abs(len(sets["test"]) / 1797 - 0.3) < 0.01


@needs_fsdd
def test_dataset_shapes_pairing_takes(tmp_path):
    _, img_labels = AVDigitsDataset._load_digits()
    pools = AVDigitsDataset._image_pools(img_labels, 0, 0.1)
    for split in ("train", "val", "test"):
        ds = AVDigitsDataset(split, cache_dir=tmp_path, **SMALL)
        assert len(ds) == 20 and ds.modalities == ["audio", "image"] and ds.num_classes == 10
        assert ds.feature_shapes == {"audio": (1, 50, 20), "image": (1, 8, 8)}
        item = ds[3]
        assert item["inputs"]["audio"].shape == (1, 50, 20) and item["inputs"]["image"].shape == (
            1,
            8,
            8,
        )
        assert item["mask"].tolist() == [True, True] and item["index"].item() == 3
        img = ds.features["image"]
        assert img.min() >= 0 and img.max() <= 1 and img.max() > 0.9
        assert np.array_equal(img_labels[ds.image_indices], ds.targets.numpy())  # paired by label
        assert set(ds.image_indices) <= set(np.concatenate(pools[split]))
        assert np.array_equal(np.bincount(ds.targets.numpy()), np.full(10, 2))
        assert all((t <= 4) == (split == "test") for t in ds.takes)
        assert all(
            f.startswith(f"{y}_") for f, y in zip(ds.audio_files, ds.targets.tolist(), strict=False)
        )


@needs_fsdd
def test_deterministic_and_seeded(tmp_path):
    a = AVDigitsDataset("train", cache_dir=tmp_path, **SMALL)
    b = AVDigitsDataset("train", cache_dir=tmp_path, **SMALL)
    assert a.audio_files == b.audio_files and np.array_equal(a.image_indices, b.image_indices)
    assert torch.equal(a.features["audio"], b.features["audio"])
    c = AVDigitsDataset("train", cache_dir=tmp_path, seed=1, **SMALL)
    assert a.audio_files != c.audio_files or not np.array_equal(a.image_indices, c.image_indices)


@needs_fsdd
def test_missing_masks_zero_fill(tmp_path):
    tr = AVDigitsDataset("train", cache_dir=tmp_path, missing_rate=0.5, **SMALL)
    te = AVDigitsDataset("test", cache_dir=tmp_path, missing_rate=0.5, **SMALL)
    assert tr.mask.any(dim=1).all() and (~tr.mask).sum() == 20
    assert not torch.equal(tr.mask, te.mask)
    for j, m in enumerate(tr.modalities):
        assert torch.all(tr.features[m][~tr.mask[:, j]] == 0)


@needs_fsdd
def test_cache_reuse_and_resume(tmp_path, monkeypatch):
    calls = []
    real = fsdd.kaldi_fbank

    def counting(*args, **kw):
        calls.append(1)
        if len(calls) == 7 and kw.get("target_length") == 30:
            raise KeyboardInterrupt  # simulated interruption of a build
        return real(*args, **kw)

    monkeypatch.setattr(fsdd, "kaldi_fbank", counting)
    params = dict(max_per_class=1, audio_mel_bins=16, audio_frames=30)
    with pytest.raises(KeyboardInterrupt):
        AVDigitsDataset("test", cache_dir=tmp_path, **params)
    cache_files = list(tmp_path.glob("fsdd_fbank_mel16_t30_*.npz"))
    assert len(cache_files) == 1 and not list(tmp_path.glob("*.tmp*"))
    calls.clear()
    first = AVDigitsDataset("test", cache_dir=tmp_path, **params)
    assert len(calls) == 4  # 6 clips were saved before the interruption
    calls.clear()
    second = AVDigitsDataset("test", cache_dir=tmp_path, **params)
    assert calls == [] and torch.equal(first.features["audio"], second.features["audio"])
    wav, sr = load_wav(fsdd.list_fsdd(FSDD)[0] / first.audio_files[0])
    assert torch.allclose(first.features["audio"][0, 0], real(wav, sr, 16, 30))
