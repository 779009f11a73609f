"""Generic pre-extracted features: one ``.npz`` file per split.

Directory layout::

    split_dir/
        train.npz          required
        val.npz            optional; if absent, a seeded val part is carved out of train.npz
        test.npz           required
        classes.txt        optional; one class name per line (line i = label i)

Keys of each ``.npz``:

- ``y``: integer labels ``[N]``;
- ``x_<modality>``: float features ``[N, d_m]`` (or ``[N, *shape]``), one key per modality;
- ``m_<modality>`` (optional): bool ``[N]``, False where the modality is absent for a sample.

Everything is validated when the dataset is built (all split files, not only the one asked
for), and each problem raises :class:`DataError` naming the file, key and sample. NaN/inf
values are only checked in the split being built, and only in cells marked present by
``m_<modality>`` (absent cells are zero-filled anyway).
"""

from __future__ import annotations

import os
import time
import warnings
import zipfile
from collections.abc import Sequence

import numpy as np
import torch

from .errors import DataError
from .missing import carve_mask, make_presence_mask, split_seed
from .reader import InMemorySplit
from .validation import check_modality_names, read_class_list

SPLITS = ("train", "val", "test")
BAD_SAMPLE_POLICIES = ("error", "skip")


# Files read in this process, by identity (path, inode, size, mtime): a run reads each
# split file for every split it builds, and a warm worker (trainers/warm_worker.py) runs
# many cells on the same files.  Arrays are read-only; the oldest go past MEMO_BYTES.  A
# file modified under MEMO_SETTLE_S ago is not kept (as git's "racy" entries: a rewrite
# within the clock's granularity could keep the same size and mtime).
MEMO_BYTES = 1 << 30
MEMO_SETTLE_S = 2.0
_memo: dict[tuple, dict[str, np.ndarray]] = {}


def _load_npz(path: str) -> dict[str, np.ndarray]:
    if not os.path.isfile(path):
        raise DataError(f"feature file not found: {path}")
    st = os.stat(path)
    key = (os.path.realpath(path), st.st_ino, st.st_size, st.st_mtime_ns)
    arrays = _memo.pop(key, None)
    if arrays is None:
        arrays = _read_npz(path)
        for a in arrays.values():
            a.setflags(write=False)
    if time.time() - st.st_mtime < MEMO_SETTLE_S:
        return dict(arrays)
    _memo[key] = arrays  # the most recently used last
    while _memo and sum(a.nbytes for f in _memo.values() for a in f.values()) > MEMO_BYTES:
        del _memo[next(iter(_memo))]
    return dict(arrays)


def _read_npz(path: str) -> dict[str, np.ndarray]:
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # a .npy array, not an archive
            raise DataError(
                f"cannot read feature file {path}: it holds one array of shape "
                f"{getattr(loaded, 'shape', '?')} (a .npy file), not a .npz archive with keys "
                "'y' and 'x_<modality>' (write it with numpy.savez)"
            )
        with loaded as z:
            return {k: np.asarray(z[k]) for k in z.files}
    except DataError:
        raise  # already says what is wrong (e.g. a .npy array), once
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as exc:
        # from None: the reason is in the message, so the error is printed once
        raise DataError(f"cannot read feature file {path} (not a readable .npz): {exc}") from None


def _check_file(path: str, arrays: dict[str, np.ndarray]) -> list[str]:
    """Check one split file's keys, shapes and dtypes; return its modality names in file order."""
    if "y" not in arrays:
        raise DataError(f"{path}: missing key 'y' (integer labels [N]); keys: {sorted(arrays)}")
    y = arrays["y"]
    if y.ndim != 1:
        raise DataError(f"{path}: key 'y' must be 1-D [N], got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        if not np.issubdtype(y.dtype, np.floating):
            raise DataError(f"{path}: key 'y' must hold integer labels, got dtype {y.dtype}")
        frac = np.flatnonzero(~np.isfinite(y) | (y != np.round(y)))
        if frac.size:
            raise DataError(
                f"{path}: key 'y' sample {frac[0]} has non-integer label {y[frac[0]].item()!r}"
            )
    n = y.shape[0]
    mods = [k[2:] for k in arrays if k.startswith("x_")]
    if not mods:
        raise DataError(f"{path}: no feature keys 'x_<modality>' found; keys: {sorted(arrays)}")
    check_modality_names(mods, path, [f"x_{m}" for m in mods])
    for m in mods:
        x = arrays["x_" + m]
        if x.ndim < 2:
            raise DataError(f"{path}: key 'x_{m}' must be [N, d], got shape {x.shape}")
        if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
            raise DataError(f"{path}: key 'x_{m}' must be numeric, got dtype {x.dtype}")
        if x.shape[0] != n:
            raise DataError(f"{path}: key 'x_{m}' has {x.shape[0]} samples but 'y' has {n}")
    for k in arrays:
        if not k.startswith("m_"):
            continue
        m, mask = k[2:], arrays[k]
        if m not in mods:
            raise DataError(f"{path}: mask key '{k}' has no matching feature key 'x_{m}'")
        if mask.shape != (n,):
            raise DataError(f"{path}: key '{k}' must have shape ({n},), got {mask.shape}")
        if mask.dtype != bool and not (
            np.issubdtype(mask.dtype, np.number) and np.isin(mask, (0, 1)).all()
        ):
            raise DataError(f"{path}: key '{k}' must be boolean (or 0/1), got dtype {mask.dtype}")
    return mods


def _what_is_bad(row: np.ndarray) -> str:
    """What makes a row non-finite: a NaN or an inf in the file, or finite values beyond
    float32's range (which the cast makes inf)."""
    if np.isnan(row).any():
        return " (a NaN in the file)"
    if np.isinf(row).any():
        return " (an inf in the file)"
    return " as float32 (magnitudes above 3.4e38 overflow)"


class FeaturesDataset(InMemorySplit):
    """One split of a pre-extracted features directory (see the module docstring).

    Args:
        split_dir: directory with ``train.npz``, ``test.npz`` and optionally ``val.npz``.
        split: ``"train"``, ``"val"`` or ``"test"``.
        modalities: modalities to use, in this order; default: the ``x_*`` keys in the
            order stored in ``train.npz``.
        missing_rate, mask_scheme: the missing-modality protocol
            (:func:`~mla_plugin.data.missing.make_presence_mask`); each split gets its own
            independent draw, seeded by ``split_seed(seed, split)``. The final presence is
            the file's ``m_*`` masks AND the protocol mask, so with given masks a sample can
            end up with no modality even under ``cpm_atleast1``.
        seed: seeds the val carve and the protocol masks.
        val_fraction: fraction of ``train.npz`` carved out as val when ``val.npz`` is absent
            (a seeded random subset; the train split then excludes it).
        on_bad_sample: ``"error"`` raises on the first sample with NaN/inf features;
            ``"skip"`` drops such samples, counts them in ``self.skipped`` and warns.

    Items: ``{"inputs": {modality: FloatTensor}, "mask": BoolTensor [M], "targets": LongTensor,
    "index": LongTensor}``; an absent modality's tensor is all zeros.
    Attributes: ``modalities``, ``num_classes``, ``class_names``, ``feature_shapes``,
    ``skipped``, ``source_rows`` (row of each sample in its ``.npz`` file), ``source_file``.
    """

    def __init__(
        self,
        split_dir: str | os.PathLike,
        split: str,
        modalities: Sequence[str] | None = None,
        missing_rate: float = 0.0,
        mask_scheme: str = "cpm_atleast1",
        seed: int = 0,
        val_fraction: float = 0.1,
        on_bad_sample: str = "error",
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if on_bad_sample not in BAD_SAMPLE_POLICIES:
            raise ValueError(
                f"on_bad_sample must be one of {BAD_SAMPLE_POLICIES}, got {on_bad_sample!r}"
            )
        if not 0.0 <= float(val_fraction) < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        make_presence_mask(0, 1, missing_rate, mask_scheme)  # validates rate and scheme early
        split_dir = os.fspath(split_dir)
        if not os.path.isdir(split_dir):
            raise DataError(f"features directory not found: {split_dir}")
        self.split = split

        # Load and check every split file that exists.
        paths = {s: os.path.join(split_dir, f"{s}.npz") for s in SPLITS}
        files: dict[str, dict[str, np.ndarray]] = {}
        file_mods: dict[str, list[str]] = {}
        for s in SPLITS:
            if s == "val" and not os.path.exists(paths[s]):
                continue
            files[s] = _load_npz(paths[s])
            file_mods[s] = _check_file(paths[s], files[s])
        train_mods = file_mods["train"]
        for s, mods in file_mods.items():
            if set(mods) != set(train_mods):
                raise DataError(
                    f"{paths[s]}: modalities {sorted(mods)} differ from {paths['train']}'s "
                    f"{sorted(train_mods)}"
                )
            for m in mods:
                a, b = files[s]["x_" + m].shape[1:], files["train"]["x_" + m].shape[1:]
                if a != b:
                    raise DataError(
                        f"{paths[s]}: key 'x_{m}' has feature shape {a} but {paths['train']} has {b}"
                    )
        if modalities is None:
            self.modalities = list(train_mods)
        else:
            self.modalities = list(modalities)
            unknown = [m for m in self.modalities if m not in train_mods]
            if unknown or not self.modalities:
                raise DataError(
                    f"{paths['train']}: requested modalities {unknown or '[]'} not available; "
                    f"available: {train_mods}"
                )
        self.feature_shapes = {
            m: tuple(files["train"]["x_" + m].shape[1:]) for m in self.modalities
        }

        # Classes and label range, over all splits.
        classes_path = os.path.join(split_dir, "classes.txt")
        if os.path.exists(classes_path):
            self.class_names = read_class_list(classes_path)
        else:
            top = max((int(f["y"].max()) for f in files.values() if f["y"].size), default=-1)
            self.class_names = [str(i) for i in range(top + 1)]
        self.num_classes = len(self.class_names)
        for s, f in files.items():
            y = f["y"]
            bad = np.flatnonzero((y < 0) | (y >= self.num_classes))
            if bad.size:
                raise DataError(
                    f"{paths[s]}: key 'y' sample {bad[0]} has label {y[bad[0]].item()!r} outside "
                    f"[0, {self.num_classes})"
                    + (f" (classes from {classes_path})" if os.path.exists(classes_path) else "")
                )

        # Rows of this split.
        src = (
            "val"
            if (split == "val" and "val" in files)
            else ("test" if split == "test" else "train")
        )
        self.source_file = paths[src]
        data = files[src]
        rows = np.arange(data["y"].shape[0])
        if src == "train" and "val" not in files:
            is_val = carve_mask(
                np.random.default_rng(split_seed(seed, "features_val_carve")),
                rows.size,
                val_fraction,
            )
            rows = rows[is_val] if split == "val" else rows[~is_val]
        if rows.size == 0:
            n = data["y"].shape[0]
            how = (
                f" (there is no val.npz, so val is carved from train.npz: round(val_fraction x "
                f"rows) = round({val_fraction} x {n}) = 0; set val_fraction to at least "
                f"{1 / max(n, 1):.3g} or add a val.npz)"
                if split == "val" and src != split
                else (
                    f" (there is no val.npz, and val_fraction {val_fraction} carves all {n} "
                    "rows of train.npz into val; lower it or add a val.npz)"
                    if split == "train" and "val" not in files and n
                    else ""
                )
            )
            raise DataError(f"{self.source_file}: split '{split}' is empty{how}")

        # Given presence and NaN/inf check on present cells.
        given = np.ones((rows.size, len(self.modalities)), dtype=bool)
        for j, m in enumerate(self.modalities):
            if "m_" + m in data:
                given[:, j] = data["m_" + m][rows].astype(bool)
        bad = np.zeros(rows.size, dtype=bool)
        first_bad_mod: dict[int, str] = {}
        for j, m in enumerate(self.modalities):
            x = data["x_" + m][rows].reshape(rows.size, -1)
            with np.errstate(over="ignore"):  # as the model reads them: after the cast
                b = ~np.isfinite(x.astype(np.float32)).all(axis=1) & given[:, j]
            for i in np.flatnonzero(b & ~bad):
                first_bad_mod[int(i)] = m
            bad |= b
        self.skipped = int(bad.sum())
        if self.skipped:
            i = int(np.flatnonzero(bad)[0])
            if on_bad_sample == "error":
                m = first_bad_mod[i]
                raise DataError(
                    f"{self.source_file}: sample {rows[i]} has NaN/inf features in key "
                    f"'x_{m}'{_what_is_bad(data['x_' + m][rows[i]])} "
                    f"({self.skipped} bad samples in split '{split}'; "
                    f"use on_bad_sample='skip' to drop them)"
                )
            warnings.warn(
                f"{self.source_file}: skipped {self.skipped} samples of split '{split}' with "
                f"NaN/inf features (first: sample {rows[i]}, key 'x_{first_bad_mod[i]}')",
                stacklevel=2,
            )
            rows, given = rows[~bad], given[~bad]
            if rows.size == 0:
                raise DataError(
                    f"{self.source_file}: split '{split}' is empty after skipping bad samples"
                )

        # Combined presence: given masks AND the protocol mask; zero-fill absent cells.
        protocol = make_presence_mask(
            rows.size, len(self.modalities), missing_rate, mask_scheme, seed=split_seed(seed, split)
        )
        self.source_rows = rows
        self.mask = torch.from_numpy(given & protocol)
        self.targets = torch.from_numpy(data["y"][rows].astype(np.int64))
        self.features: dict[str, torch.Tensor] = {}
        for j, m in enumerate(self.modalities):
            x = data["x_" + m][rows].astype(np.float32)
            x[~self.mask[:, j].numpy()] = 0.0
            self.features[m] = torch.from_numpy(x)
