"""MVSA-Single (Niu et al., MMM 2016): tweets with an image, 3 sentiment classes.

Owners' layout (``data_dir``)::

    data/<id>.jpg            the tweet's image
    data/<id>.txt            the tweet's text (UTF-8 or Latin-1)
    labelResultAll.txt       header line, then "<id>\\t<text label>,<image label>"

MVSA-Multiple has the same layout with three annotators per tweet
(``"<id>\\t<t>,<i>\\t<t>,<i>\\t<t>,<i>"``): every annotator is read, and per modality the
majority label (at least 2 of 3) is kept; a tweet whose text or image label has no
majority is dropped, and counted in a warning (:func:`annotator_vote`).

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
from .media import MediaDataset, make_split
from .record import Record, check_root
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


def annotator_vote(annotations: list[str]) -> tuple[str, str] | None:
    """``(text label, image label)`` from one or more annotators' ``"<text>,<image>"``
    fields: per modality the label most annotators gave, when more than half of them gave
    it (MVSA-Multiple: 2 of 3); None when either modality has no majority.  One annotator
    (MVSA-Single) is its own majority."""
    pairs = []
    for a in annotations:
        if "," not in a:
            raise ValueError(f"annotation {a!r} is not '<text label>,<image label>'")
        pair = tuple(lab.strip().lower() for lab in a.split(",")[:2])
        for lab in pair:
            if lab not in CLASSES:
                raise ValueError(f"unknown MVSA label {lab!r}; valid: {CLASSES}")
        pairs.append(pair)
    out = []
    for k in range(2):
        votes = [p[k] for p in pairs]
        best = max(sorted(set(votes)), key=votes.count)
        if 2 * votes.count(best) <= len(votes):
            return None
        out.append(best)
    return out[0], out[1]


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
    records, dropped, no_majority = [], 0, []
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
                pair = annotator_vote(parts[1:])
                label = None if pair is None else merge_labels(*pair)
            except ValueError as exc:
                raise DataError(f"{labels}, line {n} (sample {sid}): {exc}") from exc
            if pair is None:
                no_majority.append(sid)
                continue
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
    if no_majority:
        warnings.warn(
            f"{NAME}: dropped {len(no_majority)} tweets without a majority of annotators on "
            f"the text or the image label (first: {', '.join(no_majority[:5])})",
            stacklevel=2,
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
