"""MVSA-Single in its owners' layout (data/<id>.jpg, data/<id>.txt, labelResultAll.txt) and
the MMBT jsonl alternative: label merge rule, splits, items, bad input."""

import json

import numpy as np
import pytest
from PIL import Image

from mla_plugin.data import mvsa
from mla_plugin.data.errors import DataError

PAIRS = [
    "positive,positive",
    "neutral,negative",
    "negative,positive",
    "neutral,neutral",
    "positive,neutral",
    "negative,negative",
]
KW = dict(image_size=16, max_length=12, tokenizer="no-local-tokenizer")


def make_mvsa(root, n=36):
    (root / "data").mkdir(parents=True)
    lines = ["ID\ttext,image"]
    for i in range(1, n + 1):
        Image.fromarray(np.full((10, 10, 3), i * 5, dtype=np.uint8)).save(
            root / "data" / f"{i}.jpg"
        )
        (root / "data" / f"{i}.txt").write_bytes(f"tweet {i} so caf\xe9 #mood".encode("latin-1"))
        lines.append(f"{i}\t{PAIRS[i % len(PAIRS)]}")
    (root / "labelResultAll.txt").write_text("\n".join(lines) + "\n")
    return root


def test_merge_rule():
    assert mvsa.merge_labels("positive", "positive") == "positive"
    assert mvsa.merge_labels("neutral", "negative") == "negative"
    assert mvsa.merge_labels("positive", "neutral") == "positive"
    assert mvsa.merge_labels("neutral", "neutral") == "neutral"
    assert mvsa.merge_labels("positive", "negative") is None
    with pytest.raises(ValueError, match="unknown MVSA label 'happy'"):
        mvsa.merge_labels("happy", "neutral")


def test_scan_and_splits(tmp_path):
    root = make_mvsa(tmp_path / "MVSA_Single")
    with pytest.warns(UserWarning, match="dropped 6 tweets"):
        records, classes = mvsa.scan(root)
    assert classes == ["negative", "neutral", "positive"] and len(records) == 30
    by_id = {r.id: r for r in records}
    assert by_id["1"].label == 0 and by_id["4"].label == 2  # neutral + polar -> polar
    assert "2" not in by_id  # negative + positive -> dropped
    assert by_id["3"].label == 1 and by_id["5"].label == 0 and by_id["6"].label == 2
    assert "caf\xe9" in by_id["1"].text  # Latin-1 text read
    sizes = {}
    for split in ("train", "val", "test"):
        ds = mvsa.load_split(split, root, tmp_path / "cache", **KW)
        sizes[split] = len(ds)
        item = ds[0]
        assert item["inputs"]["text"].shape == (12,) and item["inputs"]["image"].shape == (
            3,
            16,
            16,
        )
        assert ds.modalities == ["text", "image"] and ds.num_classes == 3
    assert sizes == {"train": 24, "val": 3, "test": 3}
    (tmp_path / "tr.txt").write_text("".join(f"{i}.jpg x\n" for i in (1, 2, 4, 5, 6, 8)))
    (tmp_path / "te.txt").write_text("7.jpg x\n10.jpg x\n")
    lists = {"train": str(tmp_path / "tr.txt"), "test": str(tmp_path / "te.txt")}
    te = mvsa.load_split("test", root, tmp_path / "cache", split_lists=lists, **KW)
    assert [r.id for r in te.records] == ["7", "10"]


def test_jsonl_layout(tmp_path):
    root = tmp_path / "mvsa_jsonl"
    (root / "images").mkdir(parents=True)
    for split, n in (("train", 8), ("dev", 2), ("test", 3)):
        with open(root / f"{split}.jsonl", "w") as fh:
            for i in range(n):
                name = f"{split}{i}.jpg"
                Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "images" / name)
                fh.write(
                    json.dumps(
                        {
                            "img": name,
                            "label": ["negative", "neutral", "positive"][i % 3],
                            "text": f"text {i}",
                        }
                    )
                    + "\n"
                )
    assert [
        len(mvsa.load_split(s, root, tmp_path / "c", **KW)) for s in ("train", "val", "test")
    ] == [8, 2, 3]


def test_missing_and_bad_inputs(tmp_path):
    with pytest.raises(
        DataError, match=r"data directory not found: .*nowhere.*MVSA-Single.*labelResultAll"
    ):
        mvsa.scan(tmp_path / "nowhere")
    root = make_mvsa(tmp_path / "m", n=12)
    (root / "data" / "5.jpg").unlink()
    with pytest.warns(UserWarning):
        with pytest.raises(DataError, match=r"sample 5: image file not found: .*5\.jpg"):
            mvsa.load_split(
                "train", root, tmp_path / "cache", test_fraction=0.0, val_fraction=0.0, **KW
            )
    (root / "data" / "7.txt").unlink()
    with pytest.raises(DataError, match=r"sample 7: text file not found"):
        mvsa.scan(root)
    (root / "labelResultAll.txt").write_text("ID\ttext,image\n1\tpositive,happy\n")
    with pytest.raises(DataError, match=r"line 2 \(sample 1\): unknown MVSA label 'happy'"):
        mvsa.scan(root)


def test_mvsa_multiple_majority_of_three_annotators(tmp_path):
    from mla_plugin.data.mvsa import annotator_vote

    assert annotator_vote(["positive,neutral"]) == ("positive", "neutral")  # MVSA-Single
    assert annotator_vote(["positive,neutral", "negative,neutral", "positive,positive"]) == (
        "positive",
        "neutral",
    )
    assert annotator_vote(["positive,neutral", "negative,positive", "neutral,positive"]) is None
    (tmp_path / "data").mkdir()
    rows = {
        1: "neutral,positive\tpositive,positive\tpositive,negative",  # 2nd and 3rd: positive
        2: "negative,negative\tneutral,negative\tnegative,neutral",  # negative
        3: "positive,neutral\tnegative,positive\tneutral,negative",  # no text majority
        4: "positive,neutral\tpositive,negative\tpositive,positive",  # no image majority
        5: "negative,positive\tnegative,positive\tnegative,positive",  # pos vs neg: dropped
    }
    for i in rows:
        (tmp_path / "data" / f"{i}.txt").write_text(f"tweet {i}")
    lines = ["ID\ttext,image\ttext,image\ttext,image"] + [f"{i}\t{r}" for i, r in rows.items()]
    (tmp_path / "labelResultAll.txt").write_text("\n".join(lines) + "\n")
    with pytest.warns(UserWarning) as record:
        records, classes = mvsa.scan(tmp_path)
    text = " ".join(str(w.message) for w in record)
    assert "dropped 2 tweets without a majority" in text and "first: 3, 4" in text
    assert "dropped 1 tweets whose text and image labels are positive vs negative" in text
    assert [(r.id, classes[r.label]) for r in records] == [("1", "positive"), ("2", "negative")]
    (tmp_path / "labelResultAll.txt").write_text("1\tpositive,happy\tneutral,neutral\n")
    with pytest.raises(DataError, match=r"line 1 \(sample 1\): unknown MVSA label 'happy'"):
        mvsa.scan(tmp_path)
