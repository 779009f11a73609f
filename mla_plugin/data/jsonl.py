"""MMBT-style jsonl files (``img``, ``label``, ``text`` per line; Food-101 and MVSA).

Nothing here imports MMF.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from .errors import DataError
from .record import Record
from .splits import safe_id


def read_jsonl(path: Path) -> list[tuple[int, dict]]:
    """``(line number, object)`` of each non-empty line of a jsonl file."""
    rows = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}, line {n}: not a JSON object ({exc})") from exc
            if not isinstance(row, dict):
                raise DataError(f"{path}, line {n}: not a JSON object (got {type(row).__name__})")
            rows.append((n, row))
    return rows


def jsonl_records(
    path: Path, rows: Sequence[tuple[int, dict]], root: Path, classes: list[str]
) -> list[Record]:
    """Records of the rows of an MMBT-style jsonl file (``img``, ``label``, ``text`` per line,
    from :func:`read_jsonl`); the file's stem is the group (``dev`` = val)."""
    group = {"dev": "val"}.get(path.stem, path.stem)
    out = []
    for n, row in rows:
        try:
            img, label, text = row["img"], str(row["label"]), str(row["text"])
        except KeyError as exc:
            raise DataError(
                f"{path}, line {n}: not a JSON object with img, label and text ({exc})"
            ) from exc
        if label not in classes:
            raise DataError(
                f"{path}, line {n}: label {label!r} is not one of the classes {classes}"
            )
        img_path = root / img
        if not img_path.exists() and (root / "images" / img).exists():
            img_path = root / "images" / img
        out.append(
            Record(
                safe_id(group, Path(img).stem),
                classes.index(label),
                {"image": img_path},
                text,
                group,
            )
        )
    return out
