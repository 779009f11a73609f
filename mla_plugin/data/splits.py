"""Sample ids and splits of the paper datasets: file-name safe ids, the authors' split
lists and the deterministic train/val/test assignment (:func:`assign_splits`).

Nothing here imports MMF.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import DataError
from .features import SPLITS
from .missing import carve_mask, split_seed

if TYPE_CHECKING:
    from .record import Record


def safe_id(*parts: str) -> str:
    """A file-name safe sample id from path parts."""
    s = "__".join(str(p) for p in parts if p)
    return "".join(c if (c.isalnum() or c in "-_.") else "_" for c in s)


def last_id_part(record: Record) -> str:
    """Split-list key of a record whose id carries its group (``train__4141`` -> ``4141``)."""
    return record.id.split("__")[-1]


def read_split_list(path: str | os.PathLike) -> list[str]:
    """Sample keys of an authors'-style split list, one sample per line.

    Accepted lines: ``<file> <label>`` (``my_train_cre.txt``: ``1001_DFA_ANG_XX.flv Anger``;
    MVSA/Food-101: ``4141.jpg neutral``), ``<file> [split|sign] <text> [split|sign] <label>``
    (IEMOCAP) or a bare file name. The key is the file name's stem (no folder, no extension).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"split list not found: {path}")
    keys = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            first = line.split(" [split|sign] ")[0].split()[0]
            keys.append(Path(first).stem)
    if not keys:
        raise DataError(f"split list {path} is empty")
    return keys


def assign_splits(
    records: Sequence[Record],
    seed: int,
    split_lists: dict[str, str | None] | None = None,
    test_fraction: float = 0.1,
    val_fraction: float = 0.1,
    key: Callable[[Record], str] = lambda r: r.id,
    name: str = "dataset",
) -> dict[str, list[Record]]:
    """Records per split, deterministically.

    1. ``split_lists`` (``{"train": path, "test": path, "val": path or None}``, e.g. the
       authors' ``my_train_cre.txt``): samples are matched by ``key(record)`` (file stem);
       listed samples absent from the data are reported in a warning and skipped.
    2. else the owners' split, when the records carry one (``record.group`` train/val/test);
    3. else a seeded random ``test_fraction`` of all records is the test set.

    In every case, when there is no val part, a seeded ``val_fraction`` of train is carved
    out as val (and removed from train).
    """
    parts: dict[str, list[Record]] = {s: [] for s in SPLITS}
    lists = {k: v for k, v in (split_lists or {}).items() if v}
    if lists:
        if "train" not in lists or "test" not in lists:
            raise DataError(
                f"{name}: split_lists needs at least 'train' and 'test' files, got {sorted(lists)}"
            )
        by_key = {}
        for r in records:
            by_key.setdefault(key(r), r)
        for s, p in lists.items():
            if s not in SPLITS:
                raise DataError(f"{name}: unknown split {s!r} in split_lists; valid: {SPLITS}")
            keys = read_split_list(p)
            missing = [k for k in keys if k not in by_key]
            if missing:
                warnings.warn(
                    f"{name}: {len(missing)} of {len(keys)} samples of split list {p} "
                    f"are not in the data and are skipped (first: {missing[0]})",
                    stacklevel=2,
                )
            parts[s] = [by_key[k] for k in keys if k in by_key]
    elif any(r.group for r in records):
        for r in records:
            g = {"dev": "val", "valid": "val", "validation": "val"}.get(r.group, r.group)
            if g not in SPLITS:
                raise DataError(f"{name}: sample {r.id} has unknown split {r.group!r}")
            parts[g].append(r)
    else:
        rng = np.random.default_rng(split_seed(seed, f"{name}_test_split"))
        perm = rng.permutation(len(records))
        n_test = int(round(test_fraction * len(records)))
        test_idx = set(perm[:n_test].tolist())
        parts["test"] = [r for i, r in enumerate(records) if i in test_idx]
        parts["train"] = [r for i, r in enumerate(records) if i not in test_idx]
    if not parts["val"] and parts["train"]:
        rng = np.random.default_rng(split_seed(seed, f"{name}_val_carve"))
        is_val = carve_mask(rng, len(parts["train"]), val_fraction)
        parts["val"] = [r for r, v in zip(parts["train"], is_val, strict=False) if v]
        parts["train"] = [r for r, v in zip(parts["train"], is_val, strict=False) if not v]
    return parts
