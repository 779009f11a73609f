"""Caches keyed by everything that determines their contents, and nothing skipped or
repaired silently (docs/reliability.md, "Caches and skipped data")."""

import os
import shutil
import wave

import numpy as np
import pytest

from mla_plugin.data import fsdd as fsdd_cache
from mla_plugin.data.audio import load_wav
from mla_plugin.data.avdigits import AVDigitsDataset

PARAMS = dict(mel_bins=16, frames=20)


def _wav(path, seed, n=1200, rate=8000):
    sig = np.random.default_rng(seed).uniform(-0.5, 0.5, n)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((sig * 32767).astype("<i2").tobytes())


@pytest.fixture
def fsdd(tmp_path):
    """A tiny FSDD-like folder: digits 0-9, one speaker, takes 0-4 (the test split)."""
    rec = tmp_path / "fsdd" / "recordings"
    rec.mkdir(parents=True)
    for d in range(10):
        for t in range(5):
            _wav(rec / f"{d}_spk_{t}.wav", seed=10 * d + t)
    return rec


def _names(rec):
    return [c[0] for c in fsdd_cache.list_fsdd(rec)[1]]


def test_same_name_and_size_other_content_is_recomputed(fsdd, tmp_path):
    cache = tmp_path / "cache"
    names = _names(fsdd)
    first = fsdd_cache.fbank_cache(fsdd, names, cache, **PARAMS)
    target = fsdd / "3_spk_2.wav"
    size = target.stat().st_size
    _wav(target, seed=999)  # other samples, same length: same name and size
    assert target.stat().st_size == size
    second = fsdd_cache.fbank_cache(fsdd, names, cache, **PARAMS)
    fresh = fsdd_cache.fbank_cache(fsdd, names, tmp_path / "fresh", **PARAMS)
    assert not np.array_equal(first["3_spk_2.wav"], second["3_spk_2.wav"])
    assert all(np.array_equal(second[n], fresh[n]) for n in names)


def test_other_extractor_code_rebuilds_the_cache(fsdd, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    names = _names(fsdd)[:3]
    fsdd_cache.fbank_cache(fsdd, names, cache, **PARAMS)
    calls = []
    real = fsdd_cache.kaldi_fbank
    monkeypatch.setattr(fsdd_cache, "kaldi_fbank", lambda *a, **k: calls.append(1) or real(*a, **k))
    fsdd_cache.fbank_cache(fsdd, names, cache, **PARAMS)
    assert calls == []  # same bytes, same code: read back
    monkeypatch.setattr(fsdd_cache, "extractor_version", lambda: "other-code")
    fsdd_cache.fbank_cache(fsdd, names, cache, **PARAMS)
    assert len(calls) == 3


def test_listing_order_and_data_folder_copy_do_not_change_the_arrays(fsdd, tmp_path, monkeypatch):
    """Two copies of the data folder, one listed in reverse order, into two fresh caches
    give bit-identical datasets (a fresh clone's first run equals a warm rerun)."""
    copy = tmp_path / "copy" / "recordings"
    shutil.copytree(fsdd, copy)
    a = AVDigitsDataset(
        "test", fsdd_dir=fsdd, cache_dir=tmp_path / "c1", audio_mel_bins=16, audio_frames=20
    )
    real = os.listdir
    monkeypatch.setattr(fsdd_cache.os, "listdir", lambda p: sorted(real(p), reverse=True))
    b = AVDigitsDataset(
        "test", fsdd_dir=copy, cache_dir=tmp_path / "c2", audio_mel_bins=16, audio_frames=20
    )
    c = AVDigitsDataset(
        "test", fsdd_dir=copy, cache_dir=tmp_path / "c2", audio_mel_bins=16, audio_frames=20
    )  # read back from the cache
    for other in (b, c):
        assert a.audio_files == other.audio_files
        assert np.array_equal(a.image_indices, other.image_indices)
        for m in a.modalities:
            assert a.features[m].numpy().tobytes() == other.features[m].numpy().tobytes()


def test_unparsed_names_and_cut_wavs_are_counted_and_reported(fsdd, tmp_path):
    (fsdd / "notes.txt").write_text("x")
    (fsdd / "3_spk.wav").write_bytes(b"")
    (fsdd / ".hidden").write_text("ignored")
    cut = fsdd / "7_spk_1.wav"
    cut.write_bytes(cut.read_bytes()[:-301])  # data chunk cut short, mid-sample
    wav, _ = load_wav(cut, repaired=(rep := []))
    assert rep == [str(cut)] and wav.shape == (1, 1200 - 151)
    kw = dict(fsdd_dir=fsdd, audio_mel_bins=16, audio_frames=20)
    for cache in ("c1", "c1"):  # computed, then read back: reported both times
        with pytest.warns(UserWarning) as record:
            ds = AVDigitsDataset("test", cache_dir=tmp_path / cache, **kw)
        text = " ".join(str(w.message) for w in record)
        assert "skipped 2 files" in text and "3_spk.wav" in text and "notes.txt" in text
        assert "1 WAVs" in text and "7_spk_1.wav" in text
        assert ds.data_report == {
            "skipped_files": ["3_spk.wav", "notes.txt"],
            "repaired_files": ["7_spk_1.wav"],
        }
    assert len(ds) == 50


def test_media_fbank_cache_keyed_by_source_parameters_and_code(tmp_path, monkeypatch):
    from mla_plugin.data import media_cache
    from mla_plugin.data.record import Record

    recs = []
    for i in range(2):
        _wav(tmp_path / f"c{i}.wav", seed=i)
        recs.append(Record(f"c{i}", i, {"wav": tmp_path / f"c{i}.wav"}))
    cache = tmp_path / "cache"

    def run(**kw):
        return media_cache.preprocess_records(recs, cache, ["audio"], **{**PARAMS_M, **kw})

    assert run()["done"] == 2 and run() == {"done": 0, "cached": 2, "failed": 0}
    before = np.load(media_cache.fbank_path(cache, "c1"))
    _wav(tmp_path / "c1.wav", seed=7)  # same name and size, other samples
    st = (tmp_path / "c1.wav").stat()
    os.utime(tmp_path / "c1.wav", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert run() == {"done": 1, "cached": 1, "failed": 0}
    assert not np.array_equal(before, np.load(media_cache.fbank_path(cache, "c1")))
    assert run(mel_bins=12)["done"] == 2  # other parameters: every entry re-extracted
    assert np.load(media_cache.fbank_path(cache, "c0")).shape == (20, 12)
    assert run(mel_bins=12)["done"] == 0
    monkeypatch.setattr(media_cache, "fbank_code_version", lambda: "other-code")
    assert run(mel_bins=12)["done"] == 2  # other extraction code


PARAMS_M = dict(mel_bins=16, target_length=20)


def test_changed_text_is_tokenized_again(tmp_path):
    from mla_plugin.data import media_cache
    from mla_plugin.data.record import Record
    from mla_plugin.data.text import read_tokens

    recs = [Record("a", 0, text="the cat sat"), Record("b", 0, text="a dog ran")]
    kw = dict(tokenizer=str(tmp_path / "none"), max_length=4)
    with pytest.warns(UserWarning, match="training a WordPiece"):
        assert media_cache.preprocess_records(recs, tmp_path, ["text"], **kw)["done"] == 2
    assert media_cache.preprocess_records(recs, tmp_path, ["text"], **kw)["cached"] == 2
    path = next((tmp_path / "text").glob("tokens_*.npz"))
    before = read_tokens(path)["b"]
    recs[1].text = "the cat ran"  # same id, other text
    assert media_cache.preprocess_records(recs, tmp_path, ["text"], **kw) == {
        "done": 1,
        "cached": 1,
        "failed": 0,
    }
    assert not np.array_equal(before, read_tokens(path)["b"])
