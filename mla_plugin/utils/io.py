"""Atomic writes: a killed process never leaves a torn checkpoint or report."""

import glob
import json
import os
import tempfile

import numpy as np
import torch

TEMP_PREFIX = ".tmp-"


def _atomic(path: str, write) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=TEMP_PREFIX, suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_torch_save(obj, path: str) -> None:
    _atomic(path, lambda f: torch.save(obj, f))


def atomic_write_json(obj, path: str) -> None:
    _atomic(path, lambda f: f.write((json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()))


def atomic_write_text(text: str, path: str) -> None:
    _atomic(path, lambda f: f.write(text.encode()))


def atomic_np_save(path, array) -> None:
    """``np.save`` of ``array`` to ``path`` (written whole or not at all)."""
    _atomic(str(path), lambda f: np.save(f, array))


def atomic_savez(path, **arrays) -> None:
    """``np.savez`` of ``arrays`` to ``path`` (written whole or not at all)."""
    _atomic(str(path), lambda f: np.savez(f, **arrays))


def remove_stale_temps(directory: str) -> list[str]:
    """Delete the temporary files a writer killed mid-write left in ``directory`` (the
    target files themselves are intact).  Call it only where no other process writes."""
    removed = sorted(glob.glob(os.path.join(glob.escape(directory), TEMP_PREFIX + "*")))
    for path in removed:
        os.unlink(path)
    return removed
