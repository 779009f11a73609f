"""Atomic writes: a killed process never leaves a torn checkpoint or report, and a write
that fails (a full disk, a quota, permissions) is one :class:`WriteError` naming the path."""

import errno
import glob
import json
import os
import shutil
import tempfile

TEMP_PREFIX = ".tmp-"
PREDICTIONS_FILE = "test_predictions.npz"
"""A run folder's per-sample test predictions, beside ``metrics.json``: written by the
trainer (``trainers/results.py``), read by the leaderboard's paired tests."""


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# mkstemp creates its file 0600; a written file gets the mode open() would give it
# (0644 under the usual umask 022), so reports and runs are readable by the group.
# Read once, at import (os.umask is process-wide; the writers run in threads).
FILE_MODE = 0o666 & ~_read_umask()
DIR_MODE = 0o777 & ~_read_umask()


class WriteError(OSError):
    """A file could not be written; the message names it and, for a full disk, says so.
    ``errno`` is the failed call's (``errno.ENOSPC`` for a full disk); the file at the
    path, if any, is the previous one, intact."""


def _os_error(exc: BaseException) -> OSError | None:
    """The OSError behind ``exc`` (itself, or what it was raised from or while handling:
    torch.save reports a failed write as a RuntimeError of its zip writer)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OSError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _write_error(path: str, cause: OSError) -> WriteError:
    reason = cause.strerror or str(cause)
    if cause.errno in (errno.ENOSPC, errno.EDQUOT):
        reason += f" (free space on the filesystem of {os.path.dirname(path)}, e.g. see df)"
    previous = " (the previous file there is intact)" if os.path.exists(path) else ""
    return WriteError(cause.errno, f"cannot write {path}: {reason}{previous}")


def _atomic(path: str, write) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=TEMP_PREFIX, suffix=os.path.basename(path))
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), FILE_MODE)
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        cause = _os_error(e)
        if cause is None or isinstance(e, WriteError):
            raise
        # one error naming the path, not the OSError and torch's zip-writer error after it
        raise _write_error(path, cause) from None


def atomic_write(path: str, write) -> None:
    """``write(f)`` into a temporary file beside ``path``, then renamed over it: ``path`` is
    written whole or not at all (e.g. ``atomic_write(p, lambda f: torch.save(obj, f))``)."""
    _atomic(path, write)


def atomic_write_json(obj, path: str) -> None:
    _atomic(path, lambda f: f.write((json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()))


def atomic_write_text(text: str, path: str) -> None:
    _atomic(path, lambda f: f.write(text.encode()))


def atomic_np_save(path, array) -> None:
    """``np.save`` of ``array`` to ``path`` (written whole or not at all)."""
    import numpy as np

    _atomic(str(path), lambda f: np.save(f, array))


def atomic_savez(path, **arrays) -> None:
    """``np.savez`` of ``arrays`` to ``path`` (written whole or not at all)."""
    import numpy as np

    _atomic(str(path), lambda f: np.savez(f, **arrays))


def remove_stale_temps(directory: str) -> list[str]:
    """Delete the temporary files a writer killed mid-write left in ``directory`` (the
    target files themselves are intact).  Call it only where no other process writes."""
    removed = sorted(glob.glob(os.path.join(glob.escape(directory), TEMP_PREFIX + "*")))
    for path in removed:
        os.unlink(path)
    return removed


SET_DIR = ".reports"


def atomic_write_set(directory: str, files: dict[str, str]) -> dict[str, str]:
    """Replace the text files ``files`` ({name: text}) in ``directory`` as one set: they
    are written into a new folder ``<directory>/.reports/<build>/``, then one symlink,
    ``.reports/current``, is swapped to it (``os.replace``, atomic), and each
    ``<directory>/<name>`` is a symlink through ``current``.  A reader (or a kill) never
    sees files of two builds; a reader that opens several should resolve
    ``.reports/current`` once (:func:`os.path.realpath`).  Older builds are removed.
    Returns {name: path}."""
    base = os.path.join(directory, SET_DIR)
    os.makedirs(base, exist_ok=True)
    build = tempfile.mkdtemp(dir=base, prefix="build-")
    os.chmod(build, DIR_MODE)  # mkdtemp makes it 0700
    for name, text in files.items():
        atomic_write_text(text, os.path.join(build, name))
    _replace_symlink(os.path.basename(build), os.path.join(base, "current"))
    paths = {}
    for name in files:
        link = os.path.join(directory, name)
        target = os.path.join(SET_DIR, "current", name)
        if not (os.path.islink(link) and os.readlink(link) == target):
            _replace_symlink(target, link)
        paths[name] = link
    # earlier builds, and what a build killed before its swap left
    for old in glob.glob(os.path.join(glob.escape(base), "build-*")):
        if os.path.basename(old) != os.path.basename(build):
            shutil.rmtree(old, ignore_errors=True)
    for tmp in glob.glob(os.path.join(glob.escape(base), TEMP_PREFIX + "*")):
        os.unlink(tmp)
    return paths


def _replace_symlink(target: str, link: str) -> None:
    tmp = os.path.join(
        os.path.dirname(link), f"{TEMP_PREFIX}link-{os.getpid()}-{os.path.basename(link)}"
    )
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, link)
