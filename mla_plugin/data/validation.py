"""One data validation pass over every split before any training (docs/reliability.md,
"Validation before training").

:func:`validate_splits` reads each split's readers (:mod:`mla_plugin.data.reader`) once,
after the builders made them and before the model is built, and checks what the builders'
own file checks cannot see because it only exists after the missing-modality masks and the
dtype cast:

- **presence**: every sample has at least one modality present after the masks (the
  files' ``m_<modality>`` masks, ``missing_rate`` / ``mask_scheme``); a sample without any
  cannot be fused at evaluation.  With ``protocol.empty_samples: drop`` such samples are
  dropped (:class:`DroppedRows`) and counted instead.  The Figure 2 ``train_mask`` is
  deliberate and not checked (:class:`~mla_plugin.data.missing.TrainMasked` is looked
  through), nor are runs whose model fuses zero-filled inputs (``missing_fill: zeros``).
- **values after the cast**: every present input is finite as the model will see it
  (e.g. float64 values beyond float32's range become inf in the cast).
- **labels against classes**: every label in ``[0, num_classes)``; every class has a
  training sample unless ``protocol.empty_classes: allow``.

Each error is a :class:`~mla_plugin.data.errors.DataError` naming the dataset, the split,
the file and row (the dataset's own row or sample id, never a batch position) and what is
expected.  :func:`read_class_list` is the one parser of ``classes.txt`` files.

Nothing here imports MMF.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch

from .errors import DataError
from .missing import TrainMasked
from .reader import BatchReader

EMPTY_SAMPLE_POLICIES = ("error", "drop")
EMPTY_CLASS_POLICIES = ("error", "allow")
CHUNK = 2048  # samples per get_batch call of the scan
SHOWN = 5  # rows named in an error


# --------------------------------------------------------------------- classes.txt
def read_class_list(path: str | os.PathLike, what: str = "class list") -> list[str]:
    """The class names of ``path``, one per line, line i = label i.

    UTF-8 with or without a BOM; trailing blank lines and surrounding spaces are ignored.
    A file in another encoding, a blank line between names (it would shift every later
    label), a duplicate name or no name at all raise :class:`DataError` naming the file
    and the line."""
    path = os.fspath(path)
    with open(path, "rb") as fh:
        raw = fh.read()
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DataError(
            f"{path}: the {what} is UTF-16 (byte-order mark {raw[:2].hex(' ')}); save it as "
            "UTF-8, one class name per line"
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(
            f"{path}: the {what} is not UTF-8 text (byte 0x{raw[exc.start]:02x} on line {line}); "
            "save it as UTF-8 (with or without a BOM), one class name per line"
        ) from None
    lines = [ln.strip() for ln in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise DataError(f"{path}: the {what} has no class names (one per line expected)")
    seen: dict[str, int] = {}
    for number, name in enumerate(lines, start=1):
        if not name:
            raise DataError(
                f"{path}: line {number} of the {what} is blank; one class name per line, "
                "line i naming label i-1 (remove the blank line)"
            )
        if name in seen:
            raise DataError(
                f"{path}: line {number} of the {what} repeats {name!r} (first on line "
                f"{seen[name]}); every class name must be unique"
            )
        seen[name] = number
    return lines


# ------------------------------------------------------------------- modalities
SAMPLE_FIELDS = ("inputs", "mask", "targets", "index", "dataset_name", "dataset_type")
"""Names a sample (and MMF's SampleList of it) uses for itself beside the modalities."""


def check_modality_names(names: Sequence[str], where: str, keys: Sequence[str] = ()) -> None:
    """Refuse modality names a run cannot use, naming ``where`` (the file or config key
    they come from) and the key of the bad name (``keys[i]`` for ``names[i]`` when given,
    e.g. ``x_b.v2``): an empty or dotted name (torch's module names), a name a sample uses
    for itself (:data:`SAMPLE_FIELDS`) or that an encoder container has as an attribute
    (``train``, ``type``, ...), and a name listed twice."""
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        key = f" (key {keys[i]!r})" if i < len(keys) else ""
        problem = None
        if not isinstance(name, str) or not name:
            problem = "is empty"
        elif "." in name:
            problem = "contains '.', which torch module names cannot hold"
        elif name in SAMPLE_FIELDS:
            problem = f"is a field every sample has ({', '.join(SAMPLE_FIELDS)})"
        elif hasattr(torch.nn.ModuleDict, name):
            problem = "is an attribute of torch's module containers (as train, type, to)"
        elif name in seen:
            problem = f"is listed twice (positions {seen[name]} and {i})"
        if problem:
            raise DataError(
                f"{where}: modality name {name!r}{key} {problem}; name each modality once, "
                "with letters, digits and _ (e.g. audio, video_2)"
            )
        seen[name] = i


# ------------------------------------------------------------------------- rows
def describe_row(reader, i: int) -> str:
    """Where sample ``i`` of ``reader`` comes from: its file and row, its sample id or
    its file name, whichever the reader knows (looking through wrapping readers)."""
    i = int(i)
    while True:
        if hasattr(reader, "describe_row"):
            return reader.describe_row(i)
        if hasattr(reader, "source_rows") and hasattr(reader, "source_file"):
            return f"{reader.source_file} row {int(reader.source_rows[i])}"
        records = getattr(reader, "records", None)
        if records is not None and hasattr(records[i], "id"):
            files = getattr(records[i], "files", None) or {}
            where = f" ({next(iter(files.values()))})" if files else ""
            return f"sample {records[i].id}{where}"
        if hasattr(reader, "audio_files"):
            return f"sample {i} (audio file {reader.audio_files[i]})"
        inner = getattr(reader, "reader", None)
        if inner is None:
            return f"sample {i}"
        reader = inner


class DroppedRows:
    """``reader`` without the samples not in ``keep`` (positions into ``reader``); the
    kept samples are renumbered (``index`` 0..len-1, the position QMF's history keys by)
    and :func:`describe_row` still names their original rows."""

    def __init__(self, reader, keep: Sequence[int]):
        self.reader = reader
        self.keep = torch.as_tensor(list(keep), dtype=torch.long)
        self.modalities = list(reader.modalities)
        self.num_classes = reader.num_classes
        for attr in ("class_names", "feature_shapes"):
            if hasattr(reader, attr):
                setattr(self, attr, getattr(reader, attr))
        if isinstance(reader, BatchReader):
            self.get_batch = self._get_batch

    def __len__(self) -> int:
        return int(self.keep.numel())

    def describe_row(self, i: int) -> str:
        return describe_row(self.reader, int(self.keep[i]))

    def __getitem__(self, i: int):
        i = range(len(self))[i]
        return {**self.reader[int(self.keep[i])], "index": torch.tensor(i, dtype=torch.long)}

    def _get_batch(self, indices):
        positions = torch.as_tensor([range(len(self))[j] for j in indices], dtype=torch.long)
        batch = self.reader.get_batch(self.keep[positions].tolist())
        return {**batch, "index": positions}


# ------------------------------------------------------------------------- scan
def _below_train_mask(reader):
    """The reader under a :class:`TrainMasked` (whose masking is deliberate)."""
    return reader.reader if isinstance(reader, TrainMasked) else reader


def _stored(reader, name: str):
    """A whole-split tensor attribute (``mask``, ``targets``) of ``reader`` or of the
    readers it wraps (which keep the same rows); None when none has it."""
    while reader is not None:
        value = getattr(reader, name, None)
        if isinstance(value, torch.Tensor) and not isinstance(reader, DroppedRows):
            return value
        if isinstance(reader, DroppedRows):
            return None
        reader = getattr(reader, "reader", None)
    return None


def scan(reader) -> dict[str, object]:
    """The split's presence ``[N, M]``, targets ``[N]`` and, per modality, which samples
    have a non-finite value in a present input (``{m: bool [N]}``; only for readers that
    hold their split in memory, :class:`BatchReader`; the others load files per sample,
    and their first batch is checked by the trainer's dry forward pass)."""
    n = len(reader)
    if isinstance(reader, BatchReader):
        masks, targets = [], []
        bad = {m: [] for m in reader.modalities}
        for start in range(0, n, CHUNK):
            batch = reader.get_batch(range(start, min(n, start + CHUNK)))
            mask = torch.as_tensor(batch["mask"]).bool()
            masks.append(mask)
            targets.append(torch.as_tensor(batch["targets"]))
            for j, m in enumerate(reader.modalities):
                x = batch["inputs"][m]
                if x.is_floating_point():
                    finite = torch.isfinite(x.reshape(x.shape[0], -1)).all(dim=1)
                    bad[m].append(~finite & mask[:, j])
                else:
                    bad[m].append(torch.zeros(x.shape[0], dtype=torch.bool))
        return {
            "mask": torch.cat(masks),
            "targets": torch.cat(targets),
            "nonfinite": {m: torch.cat(v) for m, v in bad.items()},
        }
    mask, targets = _stored(reader, "mask"), _stored(reader, "targets")
    if mask is None or targets is None or len(mask) != n:
        items = [reader[i] for i in range(n)]
        mask = torch.stack([torch.as_tensor(it["mask"]) for it in items])
        targets = torch.stack([torch.as_tensor(it["targets"]) for it in items])
    return {"mask": mask.bool(), "targets": targets, "nonfinite": {}}


def _rows(reader, positions, prefix: str) -> str:
    shown = ", ".join(describe_row(reader, int(i)) for i in positions[:SHOWN])
    more = f", ... ({len(positions)} in all)" if len(positions) > SHOWN else ""
    return f"{prefix}{shown}{more}"


# ---------------------------------------------------------------------- checks
def check_policy(value, key: str, valid: Sequence[str]) -> str:
    if value not in valid:
        raise DataError(f"{key}: {value!r} is not one of {', '.join(valid)}")
    return str(value)


def validate_splits(
    readers: Mapping[str, object],
    name: str,
    *,
    empty_samples: str = "error",
    empty_classes: str = "error",
    check_presence: bool = True,
    log: Callable[[str], None] | None = None,
) -> tuple[dict[str, object], dict[str, int]]:
    """Check every split of ``readers`` (``{split: reader}``, ``train`` among them) as
    the module docstring says.  Returns the readers (with :class:`DroppedRows` where
    ``empty_samples`` is ``drop`` and a sample had no modality) and the number of samples
    dropped per split (only splits with drops); ``log`` gets one line per split with
    drops.  ``name`` names the dataset in the messages (e.g. ``features``)."""
    check_policy(empty_samples, "protocol.empty_samples", EMPTY_SAMPLE_POLICIES)
    check_policy(empty_classes, "protocol.empty_classes", EMPTY_CLASS_POLICIES)
    out, dropped = dict(readers), {}
    for split, reader in readers.items():
        where = f"{name}, {split} split"
        unmasked = _below_train_mask(reader)
        found = scan(unmasked)
        targets, num_classes = found["targets"], int(reader.num_classes)
        if targets.is_floating_point() or targets.dtype == torch.bool:
            raise DataError(
                f"{where}: labels must be integers, got dtype {targets.dtype} "
                f"(first: {describe_row(reader, 0)})"
            )
        outside = torch.nonzero((targets < 0) | (targets >= num_classes)).flatten().tolist()
        if outside:
            raise DataError(
                f"{where}: label {int(targets[outside[0]])} outside [0, {num_classes}) "
                + _rows(reader, outside, "at ")
                + f"; the dataset has {num_classes} classes (labels 0..{num_classes - 1})"
            )
        for m, bad in found["nonfinite"].items():
            rows = torch.nonzero(bad).flatten().tolist()
            if rows:
                x = torch.as_tensor(unmasked[rows[0]]["inputs"][m])
                what = (
                    "a NaN"
                    if torch.isnan(x).any()
                    else "an inf (or, in the source, a magnitude above float32's 3.4e38)"
                )
                raise DataError(
                    f"{where}: modality '{m}' has non-finite values as the model will read "
                    f"them, {what} " + _rows(reader, rows, "at ") + "; rescale or clean these "
                    "inputs"
                )
        empty = torch.nonzero(~found["mask"].any(dim=1)).flatten().tolist()
        if empty and check_presence:
            if empty_samples == "error":
                raise DataError(
                    f"{where}: {len(empty)} of {len(reader)} samples have no modality present "
                    "after the missing-modality masks (the files' masks, missing_rate, "
                    "mask_scheme) "
                    + _rows(reader, empty, ": ")
                    + "; every sample needs at least one modality to be predicted. Use "
                    "mask_scheme=cpm_atleast1 or a lower missing_rate, or set "
                    "protocol.empty_samples=drop to drop and count these samples"
                )
            keep = sorted(set(range(len(reader))) - set(empty))
            if not keep:
                raise DataError(f"{where}: every sample has no modality present; none is left")
            out[split] = DroppedRows(reader, keep)  # above a train mask: its rows unchanged
            dropped[split] = len(empty)
            if log is not None:
                log(
                    f"{where}: dropped {len(empty)} of {len(reader)} samples with no modality "
                    + _rows(reader, empty, "present (protocol.empty_samples=drop): ")
                )
    if int(out["train"].num_classes) < 2:
        names = getattr(out["train"], "class_names", None) or ["0"]
        raise DataError(
            f"{name}: the data has a single class ({names[0]!r}; e.g. "
            f"{describe_row(out['train'], 0)}), so every prediction would be right and every "
            "accuracy 100 %; a classification needs at least 2 classes. Check the labels "
            "(and the class list)"
        )
    train_targets = _stored(out["train"], "targets")
    if train_targets is None or len(train_targets) != len(out["train"]):
        train_targets = scan(_below_train_mask(out["train"]))["targets"]
    counts = np.bincount(train_targets.numpy(), minlength=int(out["train"].num_classes))
    missing = np.flatnonzero(counts == 0).tolist()
    if missing and empty_classes == "error":
        names = getattr(out["train"], "class_names", None) or []
        label = ", ".join(
            f"{c} ({names[c]!r})" if c < len(names) else str(c) for c in missing[:SHOWN]
        )
        raise DataError(
            f"{name}: class(es) {label}{' ...' if len(missing) > SHOWN else ''} have no sample "
            f"in the train split ({len(out['train'])} samples, {len(counts)} classes); the model "
            "could never learn them. Check the labels and the class list, or set "
            "protocol.empty_classes=allow"
        )
    return out, dropped
