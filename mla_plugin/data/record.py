"""One sample of the paper datasets' readers, before anything is decoded (:class:`Record`),
and the checks on a dataset's root and size that every reader shares.  No MMF import."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import DataError


@dataclass
class Record:
    """One sample: ``id`` (unique, file-name safe), integer ``label`` and its sources:
    ``files`` maps a source name (``wav``, ``video``, ``image``, ``frames_dir``) to a path,
    ``text`` holds the raw text when the dataset has one."""

    id: str
    label: int
    files: dict[str, Path] = field(default_factory=dict)
    text: str | None = None
    group: str | None = None  # the owners' split (e.g. "train"/"test") when they give one


def check_root(root: str | os.PathLike | None, name: str, howto: str) -> Path:
    """The dataset root, or a DataError saying where the data must be and how to get it."""
    if root is None:
        raise DataError(
            f"{name}: no data directory configured (dataset_config.{name}.data_dir). {howto}"
        )
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{name}: data directory not found: {root}. {howto}")
    return root


def limit_records(records: Sequence[Record], limit, name: str) -> list[Record]:
    """At most ``limit`` of ``records``, evenly spread over the list (so a class-sorted
    split keeps several classes), in their order; ``dataset_config.<name>.limit``."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise DataError(
            f"{name}: dataset_config.{name}.limit must be a positive integer (samples kept "
            f"per split) or null (all), got {limit!r}"
        )
    n = len(records)
    if n <= limit:
        return list(records)
    return [records[i * n // limit] for i in range(limit)]
