"""Kinetics-Sounds: a folder of clips per class plus a class list; preprocessing through
ffmpeg (a stand-in script here, as the machine has no ffmpeg) to fbank and 1-fps frames."""

import stat
import sys
import textwrap

import pytest

from mla_plugin.data import ks, splits
from mla_plugin.data.errors import DataError
from mla_plugin.data.preprocess import main as preprocess_main

FAKE_FFMPEG = textwrap.dedent("""\
    #!{python}
    # Stand-in for ffmpeg: frames (pattern output) or a 16 kHz WAV, like the real calls.
    import sys, wave, numpy as np
    from PIL import Image
    args = sys.argv[1:]
    src, out = args[args.index("-i") + 1], args[-1]
    if b"broken" in open(src, "rb").read():
        sys.stderr.write("Invalid data found when processing input\\n"); sys.exit(1)
    if "%" in out:
        for i in range(1, 5):
            Image.new("RGB", (10, 10), (i * 40, 0, 0)).save(out % i)
    else:
        t = np.arange(8000) / 16000
        with wave.open(out, "wb") as w:
            w.setnchannels(1); w.setsampwidth(2); w.setframerate(16000)
            w.writeframes((0.2 * np.sin(2 * np.pi * 300 * t) * 32767).astype("<i2").tobytes())
""")
KW = dict(image_size=16, mel_bins=16, target_length=20)


@pytest.fixture
def fake_ffmpeg(tmp_path, monkeypatch):
    exe = tmp_path / "bin" / "ffmpeg"
    exe.parent.mkdir()
    exe.write_text(FAKE_FFMPEG.format(python=sys.executable))
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("MLA_FFMPEG", str(exe))
    return exe


def make_ks(root, classes=("playing drums", "dog barking", "playing piano"), per_class=10):
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            (root / c / f"clip{i:02d}_000010_000020.mp4").write_bytes(b"fake video")
    (root / "not a class").mkdir()
    (root / "classes.txt").write_text("\n".join(classes) + "\n")


def test_scan_class_list_and_splits(tmp_path):
    make_ks(tmp_path / "ks")
    records, classes = ks.scan(tmp_path / "ks")
    assert classes == ["dog barking", "playing drums", "playing piano"] and len(records) == 30
    parts = splits.assign_splits(records, 0, test_fraction=0.1, val_fraction=1 / 9, name="ks")
    assert [len(parts[s]) for s in ("train", "val", "test")] == [24, 3, 3]


def test_preprocess_and_load_through_ffmpeg(tmp_path, fake_ffmpeg):
    make_ks(tmp_path / "ks", per_class=2)
    rc = preprocess_main(
        [
            "ks",
            "--root",
            str(tmp_path / "ks"),
            "--out",
            str(tmp_path / "cache"),
            "--mel-bins",
            "16",
            "--target-length",
            "20",
        ]
    )
    assert rc == 0
    assert len(list((tmp_path / "cache" / "fbank").glob("*.npy"))) == 6
    assert len(list((tmp_path / "cache" / "frames").iterdir())) == 6
    written = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").rglob("*.npy")}
    rc = preprocess_main(
        [
            "ks",
            "--root",
            str(tmp_path / "ks"),
            "--out",
            str(tmp_path / "cache"),
            "--mel-bins",
            "16",
            "--target-length",
            "20",
        ]
    )  # resumes: nothing to do
    assert rc == 0
    assert {p: p.stat().st_mtime_ns for p in written} == written  # nothing rewritten
    ds = ks.load_split(
        "train",
        tmp_path / "ks",
        tmp_path / "cache",
        preprocess=False,
        test_fraction=0.0,
        val_fraction=0.0,
        **KW,
    )
    item = ds[0]
    assert len(ds) == 6 and item["inputs"]["audio"].shape == (1, 20, 16)
    assert item["inputs"]["video"].shape == (3, 3, 16, 16)


def test_bad_video_and_missing_ffmpeg(tmp_path, fake_ffmpeg, monkeypatch, capsys):
    make_ks(tmp_path / "ks", per_class=1)
    (tmp_path / "ks" / "dog barking" / "clip00_000010_000020.mp4").write_bytes(b"broken")
    rc = preprocess_main(["ks", "--root", str(tmp_path / "ks"), "--out", str(tmp_path / "c")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "dog_barking__clip00_000010_000020" in err and "cannot extract the audio" in err
    with pytest.warns(UserWarning, match="skipped 1 bad samples"):
        ds = ks.load_split(
            "train",
            tmp_path / "ks",
            tmp_path / "c2",
            test_fraction=0.0,
            val_fraction=0.0,
            on_bad_sample="skip",
            **KW,
        )
    assert len(ds) == 2
    monkeypatch.setenv("MLA_FFMPEG", "")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DataError, match="ffmpeg is needed"):
        ks.load_split("train", tmp_path / "ks", tmp_path / "c3", **KW)
    with pytest.raises(DataError, match=r"data directory not found: .*Kinetics"):
        ks.scan(tmp_path / "missing")
