"""CREMA-D in its owners' layout (AudioWAV/*.wav, VideoFlash/*.flv or extracted frames):
labels from the clip name, the authors' split lists, fbank + frames, bad input."""

import wave

import numpy as np
import pytest
from PIL import Image

from mla_plugin.data import cremad
from mla_plugin.data.errors import DataError

EMO = ["ANG", "DIS", "FEA", "HAP", "NEU", "SAD"]
KW = dict(image_size=16, mel_bins=16, target_length=32)


def make_cremad(root, frames_root, n_actors=3):
    (root / "AudioWAV").mkdir(parents=True)
    clips = []
    for a in range(n_actors):
        for k, e in enumerate(EMO):
            clip = f"{1001 + a}_DFA_{e}_XX"
            t = np.arange(3200) / 16000
            with wave.open(str(root / "AudioWAV" / f"{clip}.wav"), "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(16000)
                w.writeframes(
                    (0.2 * np.sin(2 * np.pi * (200 + 50 * k) * t) * 32767).astype("<i2").tobytes()
                )
            for f in range(2 + a):  # 2-4 frames (1 fps of 2-4 s clips)
                (frames_root / clip).mkdir(parents=True, exist_ok=True)
                Image.fromarray(np.full((12, 12, 3), 40 * f, np.uint8)).save(
                    frames_root / clip / f"{f:03d}.jpg"
                )
            clips.append(clip)
    return clips


def test_labels_from_names():
    assert cremad.CLASSES == ["Anger", "Disgust", "Fear", "Happy", "Neutral", "Sad"]
    assert cremad.label_of("1001_DFA_ANG_XX") == 0 and cremad.label_of("1091_WSI_SAD_LO") == 5
    with pytest.raises(DataError, match="clip name '1001_DFA_XYZ_XX' does not follow"):
        cremad.label_of("1001_DFA_XYZ_XX")


def test_load_with_extracted_frames_and_split_lists(tmp_path):
    clips = make_cremad(tmp_path / "CREMA-D", tmp_path / "frames")
    ds = cremad.load_split(
        "train", tmp_path / "CREMA-D", tmp_path / "cache", frames_dir=tmp_path / "frames", **KW
    )
    assert len(ds) == 14 and ds.modalities == ["audio", "video"]  # 18 clips: 2 test, 2 val
    item = ds[0]
    assert item["inputs"]["audio"].shape == (1, 32, 16) and item["inputs"]["video"].shape == (
        3,
        3,
        16,
        16,
    )
    assert len(list((tmp_path / "cache" / "fbank").glob("*.npy"))) == 14  # only this split cached
    train = [f"{c}.flv {cremad.EMOTIONS[c.split('_')[2]]}\n" for c in clips[:12]]
    (tmp_path / "my_train_cre.txt").write_text("".join(train))
    (tmp_path / "my_test_cre.txt").write_text("".join(f"{c}.flv x\n" for c in clips[12:]))
    lists = {"train": str(tmp_path / "my_train_cre.txt"), "test": str(tmp_path / "my_test_cre.txt")}
    te = cremad.load_split(
        "test",
        tmp_path / "CREMA-D",
        tmp_path / "cache",
        frames_dir=tmp_path / "frames",
        split_lists=lists,
        **KW,
    )
    assert [r.id for r in te.records] == clips[12:]
    assert te.targets.tolist() == [cremad.label_of(c) for c in clips[12:]]


def test_missing_and_bad_inputs(tmp_path):
    with pytest.raises(DataError, match=r"data directory not found: .*AudioWAV.*CREMA-D"):
        cremad.load_split("train", tmp_path / "none", tmp_path / "cache")
    clips = make_cremad(tmp_path / "C", tmp_path / "frames", n_actors=1)
    with pytest.raises(DataError, match=r"video folder not found: .*VideoFlash"):
        cremad.load_split("train", tmp_path / "C", tmp_path / "cache")
    for f in (tmp_path / "frames" / clips[0]).iterdir():
        f.unlink()
    with pytest.raises(DataError, match=rf"sample {clips[0]}: no frames in .*{clips[0]}"):
        cremad.load_split(
            "train",
            tmp_path / "C",
            tmp_path / "cache",
            frames_dir=tmp_path / "frames",
            test_fraction=0.0,
            val_fraction=0.0,
            **KW,
        )
    (tmp_path / "C" / "AudioWAV" / f"{clips[1]}.wav").write_bytes(b"broken")
    with pytest.raises(DataError, match=rf"sample {clips[1]}: cannot read WAV file"):
        cremad.load_split(
            "train",
            tmp_path / "C",
            tmp_path / "cache2",
            frames_dir=tmp_path / "frames",
            test_fraction=0.0,
            val_fraction=0.0,
            modalities=["audio"],
            **KW,
        )
