"""UPMC Food-101 in its owners' layout (images/{train,test}/<class>/*.jpg + texts/*_titles.csv)
and the MMBT jsonl layout."""

import csv
import json

import numpy as np
import pytest
from PIL import Image

from mla_plugin.data import food101
from mla_plugin.data.errors import DataError

KW = dict(image_size=16, max_length=10, tokenizer="no-local-tokenizer")
CLASSES = ["apple_pie", "baby_back_ribs", "sushi"]


def make_upmc(root, per_class=4):
    for group in ("train", "test"):
        (root / "texts").mkdir(parents=True, exist_ok=True)
        with open(root / "texts" / f"{group}_titles.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            for c in CLASSES:
                (root / "images" / group / c).mkdir(parents=True, exist_ok=True)
                for i in range(per_class):
                    name = f"{c}_{i}.jpg"
                    Image.fromarray(np.full((9, 9, 3), i, np.uint8)).save(
                        root / "images" / group / c / name
                    )
                    if not (group == "test" and c == "sushi" and i == 0):  # one image has no title
                        w.writerow([name, f"best {c.replace('_', ' ')} recipe, easy", c])
    return root


def test_upmc_layout(tmp_path):
    root = make_upmc(tmp_path / "food")
    with pytest.warns(UserWarning, match="dropped 1 images without a title"):
        records, classes = food101.scan(root)
    assert classes == CLASSES and len(records) == 23
    r = next(r for r in records if r.id == "train__baby_back_ribs_2")
    assert r.label == 1 and r.text == "best baby back ribs recipe, easy" and r.group == "train"
    with pytest.warns(UserWarning):
        sizes = [
            len(food101.load_split(s, root, tmp_path / "c", **KW)) for s in ("train", "val", "test")
        ]
    assert sizes == [11, 1, 11]  # owners' train/test; val carved from train
    with pytest.warns(UserWarning):
        item = food101.load_split("test", root, tmp_path / "c", **KW)[0]
    assert item["inputs"]["image"].shape == (3, 16, 16) and item["inputs"]["text"].shape == (10,)


def test_jsonl_layout_and_bad_label(tmp_path):
    root = tmp_path / "mmbt"
    root.mkdir()
    for split, n in (("train", 6), ("dev", 2), ("test", 3)):
        with open(root / f"{split}.jsonl", "w") as fh:
            for i in range(n):
                c = CLASSES[i % 3]
                (root / "images" / split / c).mkdir(parents=True, exist_ok=True)
                img = f"images/{split}/{c}/{c}_{i}.jpg"
                Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / img)
                fh.write(json.dumps({"img": img, "label": c, "text": f"{c} {i}"}) + "\n")
    assert [
        len(food101.load_split(s, root, tmp_path / "c", **KW)) for s in ("train", "val", "test")
    ] == [6, 2, 3]
    with open(root / "test.jsonl", "a") as fh:
        fh.write("{not json\n")
    with pytest.raises(DataError, match=r"test.jsonl, line 4: not a JSON object"):
        food101.scan(root)


def test_missing_data_and_bad_csv(tmp_path):
    with pytest.raises(DataError, match=r"data directory not found: .*UPMC Food-101"):
        food101.scan(tmp_path / "none")
    root = make_upmc(tmp_path / "f", per_class=1)
    with open(root / "texts" / "train_titles.csv", "a") as fh:
        fh.write("x.jpg,some title,pizza\n")
    with pytest.raises(DataError, match=r"train_titles.csv, line 4: class 'pizza' has no folder"):
        food101.scan(root)
