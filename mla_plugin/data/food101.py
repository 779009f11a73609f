"""UPMC Food-101 (Wang et al. 2015): recipe web pages' images and titles, 101 classes.

Owners' layout (``data_dir``)::

    images/train/<class>/<name>.jpg
    images/test/<class>/<name>.jpg
    texts/train_titles.csv          rows "<name>.jpg","<title text>","<class>" (no header)
    texts/test_titles.csv

or the MMBT layout: ``{train,dev,test}.jsonl`` with ``img`` (path relative to ``data_dir``),
``label`` and ``text`` per line (used when present; ``dev`` is the val split; the authors
of MLA used these jsonl splits, 62,970 train / 22,714 test).

Classes: the alphabetically sorted class names (image folders, or jsonl labels).
Modalities: ``text`` (token ids) and ``image``. Images without a title row are dropped
(counted in a warning).
"""

from __future__ import annotations

import csv
import os
import warnings

from .errors import DataError
from .jsonl import jsonl_records, read_jsonl
from .media import MediaDataset, make_split
from .record import Record, check_root
from .splits import last_id_part, safe_id

NAME = "food101"
MODALITIES = ["text", "image"]
# the owners' train/test (val carved from train: 10 %); split lists name image files,
# matched to the id without its group
SPLIT_OPTIONS = {"test_fraction": 0.1, "val_fraction": 0.1, "key": last_id_part}
HOWTO = (
    "Expected UPMC Food-101 as distributed: <data_dir>/images/{train,test}/<class>/*.jpg with "
    "<data_dir>/texts/{train,test}_titles.csv, or MMBT-style train/dev/test.jsonl. Download it from "
    "the UPMC Food-101 page (visiir.isir.upmc.fr, also mirrored on Kaggle as 'UPMC Food-101') and "
    "pass its folder as dataset_config.food101.data_dir; see docs/datasets.md."
)


def scan(root: str | os.PathLike) -> tuple[list[Record], list[str]]:
    root = check_root(root, NAME, HOWTO)
    jsonls = [root / f"{s}.jsonl" for s in ("train", "dev", "test")]
    if jsonls[0].is_file() and jsonls[2].is_file():
        rows = {p: read_jsonl(p) for p in jsonls if p.is_file()}
        labels = set()
        for p, lines in rows.items():
            for n, row in lines:
                if "label" not in row:
                    raise DataError(f"{p}, line {n}: not a JSON object with a label")
                labels.add(str(row["label"]))
        classes = sorted(labels)
        return [
            r for p, lines in rows.items() for r in jsonl_records(p, lines, root, classes)
        ], classes
    images = root / "images"
    if not (images / "train").is_dir():
        raise DataError(
            f"{NAME}: neither train/test.jsonl nor images/train/ found in {root}. {HOWTO}"
        )
    classes = sorted(d.name for d in (images / "train").iterdir() if d.is_dir())
    if not classes:
        raise DataError(f"{NAME}: no class folders in {images / 'train'}. {HOWTO}")
    records, untitled = [], 0
    for group in ("train", "test"):
        csv_path = root / "texts" / f"{group}_titles.csv"
        if not csv_path.is_file():
            raise DataError(f"{NAME}: title file not found: {csv_path}. {HOWTO}")
        titles = {}
        with open(csv_path, encoding="utf-8", errors="replace", newline="") as fh:
            for n, row in enumerate(csv.reader(fh), 1):
                if not row or (n == 1 and row[0].lower() in ("image", "img", "filename", "file")):
                    continue
                if len(row) < 3:
                    raise DataError(
                        f"{csv_path}, line {n}: expected '<image>,<title>,<class>', got {row!r}"
                    )
                name, label, text = row[0], row[-1], ",".join(row[1:-1])
                if label not in classes:
                    raise DataError(
                        f"{csv_path}, line {n}: class {label!r} has no folder in {images / 'train'}"
                    )
                titles[(label, name)] = text
        for c in classes:
            folder = images / group / c
            if not folder.is_dir():
                continue
            for img in sorted(folder.iterdir()):
                if img.suffix.lower() not in (".jpg", ".jpeg", ".png"):
                    continue
                text = titles.get((c, img.name))
                if text is None:
                    untitled += 1
                    continue
                records.append(
                    Record(safe_id(group, img.stem), classes.index(c), {"image": img}, text, group)
                )
    if untitled:
        warnings.warn(f"{NAME}: dropped {untitled} images without a title row", stacklevel=2)
    return records, classes


def load_split(split: str, data_dir, cache_dir, modalities=None, **kwargs) -> MediaDataset:
    """One split: the authors' ``split_lists`` (``<image file> <label>`` lines) when given, else
    the owners' train/test (+ jsonl dev); val carved from train when absent."""
    records, classes = scan(data_dir)
    return make_split(
        NAME,
        records,
        classes,
        split,
        list(modalities or MODALITIES),
        cache_dir,
        howto=HOWTO,
        **{**SPLIT_OPTIONS, **kwargs},
    )
