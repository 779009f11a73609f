"""MVSA-Single (Niu et al., MMM 2016): tweets with an image, 3 sentiment classes.

Owners' layout (``data_dir``)::

    data/<id>.jpg            the tweet's image
    data/<id>.txt            the tweet's text (UTF-8 or Latin-1)
    labelResultAll.txt       header line, then "<id>\\t<text label>,<image label>"

Label rule (Xu & Mao 2017, followed by later MVSA work): the text and image labels are
merged into one -- equal labels give that label; one ``neutral`` and one polar label give
the polar label; ``positive`` with ``negative`` is inconsistent and the tweet is dropped.
Classes (alphabetical): negative, neutral, positive.

Alternatively the MMBT/QMF-style ``{train,dev,test}.jsonl`` (keys ``img``, ``label``,
``text``) in ``data_dir`` are used when present (labels as given; ``dev`` is the val split).

Modalities: ``text`` (token ids) and ``image``.
"""

from __future__ import annotations

import os
import warnings

from .errors import DataError
from .jsonl import jsonl_records, read_jsonl
from .media import MediaDataset, Record, check_root, make_split
from .splits import last_id_part
from .text import read_text

NAME = "mvsa"
MODALITIES = ["text", "image"]
CLASSES = ["negative", "neutral", "positive"]
# seeded 10 % test when there are no split lists or jsonl splits; val: 10 % of train;
# split lists name files (``4141.jpg``), matched to the id without its group
SPLIT_OPTIONS = {"test_fraction": 0.1, "val_fraction": 0.1, "key": last_id_part}
HOWTO = (
    "Expected MVSA-Single as distributed: <data_dir>/data/<id>.jpg, <data_dir>/data/<id>.txt and "
    "<data_dir>/labelResultAll.txt (or MMBT-style train/dev/test.jsonl). Request it from the MVSA "
    "authors (MCRLab, Niu et al. 2016: 'Sentiment analysis on multi-view social data') and pass "
    "its folder as dataset_config.mvsa.data_dir; see docs/datasets.md."
)


def merge_labels(text_label: str, image_label: str) -> str | None:
    """One label from the text and image labels (module docstring); None = dropped."""
    t, i = text_label.strip().lower(), image_label.strip().lower()
    for lab in (t, i):
        if lab not in CLASSES:
            raise ValueError(f"unknown MVSA label {lab!r}; valid: {CLASSES}")
    if t == i:
        return t
    if "neutral" in (t, i):
        return i if t == "neutral" else t
    return None  # positive vs negative


def scan(root: str | os.PathLike) -> tuple[list[Record], list[str]]:
    """Records and class names of an MVSA-Single folder (see the module docstring)."""
    root = check_root(root, NAME, HOWTO)
    jsonls = [root / f"{s}.jsonl" for s in ("train", "dev", "test")]
    if all(p.is_file() for p in (jsonls[0], jsonls[2])):
        records = [
            r for p in jsonls if p.is_file() for r in jsonl_records(p, read_jsonl(p), root, CLASSES)
        ]
        return records, list(CLASSES)
    labels = root / "labelResultAll.txt"
    if not labels.is_file():
        raise DataError(f"{NAME}: label file not found: {labels}. {HOWTO}")
    records, dropped = [], 0
    with open(labels, encoding="utf-8", errors="replace") as fh:
        for n, line in enumerate(fh, 1):
            parts = line.split()
            if not parts or (n == 1 and not parts[0].isdigit()):
                continue  # header "ID text,image"
            if len(parts) < 2 or "," not in parts[1]:
                raise DataError(
                    f"{labels}, line {n}: expected '<id> <text label>,<image label>', got {line.strip()!r}"
                )
            sid = parts[0]
            try:
                label = merge_labels(*parts[1].split(",")[:2])
            except ValueError as exc:
                raise DataError(f"{labels}, line {n} (sample {sid}): {exc}") from exc
            if label is None:
                dropped += 1
                continue
            txt = root / "data" / f"{sid}.txt"
            if not txt.is_file():
                raise DataError(f"{NAME}: sample {sid}: text file not found: {txt}. {HOWTO}")
            records.append(
                Record(
                    sid,
                    CLASSES.index(label),
                    {"image": root / "data" / f"{sid}.jpg"},
                    read_text(txt),
                )
            )
    if dropped:
        warnings.warn(
            f"{NAME}: dropped {dropped} tweets whose text and image labels are "
            f"positive vs negative",
            stacklevel=2,
        )
    return records, list(CLASSES)


def load_split(split: str, data_dir, cache_dir, modalities=None, **kwargs) -> MediaDataset:
    """One split: the authors' ``split_lists`` when given (``4141.jpg neutral`` lines), else
    the jsonl split, else a seeded 10 % test split; val carved from train when absent."""
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
