"""IEMOCAP in the official release layout (sentences/wav, dialog/EmoEvaluation,
dialog/transcriptions) plus a faces folder: 4-class mapping with happy+excited merged."""

import wave

import numpy as np
import pytest
from PIL import Image

from mla_plugin.data import iemocap
from mla_plugin.data.errors import DataError

KW = dict(
    image_size=16, mel_bins=16, target_length=24, max_length=8, tokenizer="no-local-tokenizer"
)
EMOS = ["neu", "hap", "exc", "ang", "sad", "fru", "xxx", "sur"]


def make_iemocap(root, faces, per_dialog=8):
    for s in (1, 2):
        dialog = f"Ses0{s}F_impro01"
        sess = root / f"Session{s}"
        for sub in ("sentences/wav/" + dialog, "dialog/EmoEvaluation", "dialog/transcriptions"):
            (sess / sub).mkdir(parents=True, exist_ok=True)
        ev = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
        tr = []
        for i in range(per_dialog):
            utt = f"{dialog}_F{i:03d}"
            with wave.open(str(sess / "sentences/wav" / dialog / f"{utt}.wav"), "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(16000)
                w.writeframes(
                    (np.random.default_rng(i).normal(0, 0.1, 2400) * 32767).astype("<i2").tobytes()
                )
            ev += [
                f"[{i}.0000 - {i}.9000]\t{utt}\t{EMOS[i % len(EMOS)]}\t[2.5000, 2.5000, 2.5000]",
                f"C-E1:\t{EMOS[i % len(EMOS)]};\t()",
                "",
            ]
            tr.append(f"{utt} [{i}.0000-{i}.9000]: utterance number {i}, okay.")
            for f in range(3):
                (faces / utt).mkdir(parents=True, exist_ok=True)
                Image.fromarray(np.full((10, 10, 3), 60 * f, np.uint8)).save(
                    faces / utt / f"img_{f}.jpg"
                )
        (sess / "dialog/EmoEvaluation" / f"{dialog}.txt").write_text("\n".join(ev) + "\n")
        (sess / "dialog/transcriptions" / f"{dialog}.txt").write_text("\n".join(tr) + "\n")


def test_scan_four_classes_with_merge(tmp_path):
    make_iemocap(tmp_path / "IEMOCAP_full_release", tmp_path / "faces")
    records, classes = iemocap.scan(tmp_path / "IEMOCAP_full_release", tmp_path / "faces")
    assert classes == ["Angry", "Happy", "Neutral", "Sad"]
    assert len(records) == 10  # 5 of the 8 emotions kept per dialog
    by_id = {r.id: r for r in records}
    assert (
        by_id["Ses01F_impro01_F001"].label == 1 and by_id["Ses01F_impro01_F002"].label == 1
    )  # hap, exc
    assert by_id["Ses01F_impro01_F003"].label == 0 and by_id["Ses01F_impro01_F004"].label == 3
    assert by_id["Ses02F_impro01_F000"].text == "utterance number 0, okay."
    assert "Ses01F_impro01_F005" not in by_id  # frustrated: dropped


def test_load_splits_and_items(tmp_path):
    make_iemocap(tmp_path / "R", tmp_path / "faces", per_dialog=16)
    sizes = {}
    for split in ("train", "val", "test"):
        ds = iemocap.load_split(
            split, tmp_path / "R", tmp_path / "cache", faces_dir=tmp_path / "faces", **KW
        )
        sizes[split] = len(ds)
    assert sizes == {"train": 12, "val": 4, "test": 4}  # 60/20/20 of 20
    item = ds[0]
    assert ds.modalities == ["audio", "image", "text"]
    assert item["inputs"]["audio"].shape == (1, 24, 16) and item["inputs"]["image"].shape == (
        3,
        16,
        16,
    )
    assert item["inputs"]["text"].shape == (8,) and item["inputs"]["text"][0] > 4


def test_bad_inputs(tmp_path):
    make_iemocap(tmp_path / "R", tmp_path / "faces")
    with pytest.raises(
        DataError, match="image modality needs face crops: set dataset_config.iemocap.faces_dir"
    ):
        iemocap.scan(tmp_path / "R")
    assert len(iemocap.scan(tmp_path / "R", modalities=["audio", "text"])[0]) == 10
    with pytest.raises(DataError, match=r"no Session\* folders in .*faces.*IEMOCAP_full_release"):
        iemocap.scan(tmp_path / "faces", tmp_path / "faces")
    (tmp_path / "R/Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav").unlink()
    with pytest.raises(DataError, match=r"sample Ses01F_impro01_F000: audio file not found"):
        iemocap.load_split(
            "train",
            tmp_path / "R",
            tmp_path / "cache",
            modalities=["audio"],
            test_fraction=0.0,
            val_fraction=0.0,
            **KW,
        )


def test_preprocess_command_trains_the_vocabulary_on_the_training_split(tmp_path, monkeypatch):
    """Without a local tokenizer the command's fallback vocabulary is trained on exactly the
    train texts that training's own split gives (no val/test text leaks into it), also with
    split lists."""
    from mla_plugin.data import media_cache
    from mla_plugin.data.preprocess import main as preprocess_main

    make_iemocap(tmp_path / "R", tmp_path / "faces", per_dialog=16)
    trained_on = []
    real = media_cache.load_tokenizer

    def recording(name, fallback_texts=None, fallback_dir=None, **kw):
        if fallback_texts is not None:
            trained_on.append(list(fallback_texts))
        return real(name, fallback_texts, fallback_dir, **kw)

    monkeypatch.setattr(
        media_cache, "load_tokenizer", recording
    )  # where preprocess_records looks it up
    args = [
        "iemocap",
        "--root",
        str(tmp_path / "R"),
        "--modalities",
        "text",
        "--tokenizer",
        "no-local-tokenizer",
        "--max-length",
        "8",
        "--seed",
        "3",
    ]
    with pytest.warns(UserWarning, match="training a WordPiece vocabulary"):
        assert preprocess_main(args + ["--out", str(tmp_path / "c1")]) == 0
        iemocap.load_split(
            "test", tmp_path / "R", tmp_path / "c2", modalities=["text"], seed=3, **KW
        )
    command, training = trained_on
    assert len(training) == 12 and command == training  # 60 % of the 20 utterances
    records, _ = iemocap.scan(tmp_path / "R", modalities=["text"])
    (tmp_path / "tr.txt").write_text("".join(f"{r.id}.mp4 x\n" for r in records[:9]))
    (tmp_path / "te.txt").write_text("".join(f"{r.id}.mp4 x\n" for r in records[9:]))
    lists = {"train": str(tmp_path / "tr.txt"), "test": str(tmp_path / "te.txt")}
    trained_on.clear()
    with pytest.warns(UserWarning, match="training a WordPiece vocabulary"):
        assert (
            preprocess_main(
                args
                + [
                    "--out",
                    str(tmp_path / "c3"),
                    "--split-list",
                    "train",
                    lists["train"],
                    "--split-list",
                    "test",
                    lists["test"],
                ]
            )
            == 0
        )
        iemocap.load_split(
            "val",
            tmp_path / "R",
            tmp_path / "c4",
            modalities=["text"],
            seed=3,
            split_lists=lists,
            **KW,
        )
    command, training = trained_on
    assert command == training and set(command) <= {r.text for r in records[:9]}
