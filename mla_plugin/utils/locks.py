"""The one lock of a run folder: ``fcntl.flock`` on ``<folder>/.lock``.

A run folder (an ``env.save_dir``, a leaderboard cell) has one writer at a time.  The
writer holds an exclusive ``flock`` on ``<folder>/.lock`` for as long as it lives and
writes its pid into the file; the kernel releases the lock when the process dies, so a
killed writer never leaves a stale lock behind.

**Handing the lock to a child process.**  The leaderboard locks a cell's folder, then
starts ``mmf_run`` in it; the child must write into the folder the parent holds.  The
parent passes its descriptor to the child (``subprocess.Popen(..., pass_fds=(fd,))``) and
names it in the environment variable :data:`LOCK_FD_ENV` (``MLA_RUN_LOCK_FD=<fd>``), as
:func:`child_env` does.  The child's :func:`acquire` of the same folder then adopts that
descriptor (the open file description the flock belongs to), after checking that it is
the same file (device and inode).  Nothing else is inherited: without the variable, a
locked folder is in use, whoever holds it.

Every lock of the project is taken here: the trainer's save_dir lock
(:mod:`mla_plugin.trainers.records`), the leaderboard's cell lock and its ``--status``
probe.  This module imports only the standard library.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Mapping

LOCK_NAME = ".lock"
LOCK_FD_ENV = "MLA_RUN_LOCK_FD"
"""Environment variable naming a descriptor, inherited from the parent, that holds the
lock of the folder the child will write into (see the module docstring)."""

_HELD: dict[str, int] = {}
"""Lock files this process holds: real path -> descriptor.  Re-entrant within a process
(a trainer built twice in one process, as tests do, reuses its lock)."""


class LockHeld(RuntimeError):
    """The folder's lock is held by another process (``holder``: its pid as text)."""

    def __init__(self, folder: str, path: str, holder: str):
        self.folder, self.path, self.holder = folder, path, holder
        super().__init__(f"{folder} is in use: process {holder} holds {path}")


def lock_path(folder: str) -> str:
    return os.path.join(folder, LOCK_NAME)


def _same_file(fd: int, path: str) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _inherited(path: str) -> int | None:
    """The descriptor named by :data:`LOCK_FD_ENV`, if it is open, refers to ``path`` and
    holds its lock; else None."""
    value = os.environ.get(LOCK_FD_ENV, "")
    if not value.isdigit():
        return None
    fd = int(value)
    if not _same_file(fd, path):
        return None
    try:  # succeeds only on the open file description that holds the lock
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return None
    return fd


def _read_holder(fd: int) -> str:
    return os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"


def write_holder(fd: int, pid: int | None = None) -> None:
    """Record ``pid`` (default: this process) as the lock's holder."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(pid or os.getpid()).encode(), 0)


def acquire(
    folder: str,
    *,
    wait: bool = False,
    poll: float = 0.5,
    on_wait: Callable[[str], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> int | None:
    """Lock ``folder`` (created if need be) and return the descriptor that holds it.

    Re-entrant within the process, and adopts a descriptor inherited through
    :data:`LOCK_FD_ENV`.  When another process holds the lock: raise :class:`LockHeld`, or
    with ``wait`` poll every ``poll`` seconds until it is free (``on_wait(holder)`` once,
    when the wait begins; None as soon as ``stop()`` says so)."""
    os.makedirs(folder, exist_ok=True)
    path = lock_path(folder)
    key = os.path.realpath(path)
    if key in _HELD:
        return _HELD[key]
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    waiting = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            inherited = _inherited(path)
            if inherited is not None:
                os.close(fd)
                _HELD[key] = inherited
                return inherited
            if not wait:
                holder = _read_holder(fd)
                os.close(fd)
                raise LockHeld(folder, path, holder) from None
            if not waiting and on_wait is not None:
                on_wait(_read_holder(fd))
            waiting = True
            if stop is not None and stop():
                os.close(fd)
                return None
            time.sleep(poll)
            continue
        write_holder(fd)
        _HELD[key] = fd
        return fd


def release(fd: int) -> None:
    """Give the lock back (closes ``fd``)."""
    for key, held in list(_HELD.items()):
        if held == fd:
            del _HELD[key]
    os.close(fd)


def is_locked(folder: str) -> bool:
    """Whether some process holds ``folder``'s lock (this one's own locks count)."""
    path = lock_path(folder)
    if os.path.realpath(path) in _HELD:
        return True
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def holder(folder: str) -> str:
    """The pid recorded in ``folder``'s lock file ("?" when there is none)."""
    try:
        with open(lock_path(folder)) as f:
            return f.read().strip() or "?"
    except OSError:
        return "?"


def child_env(fd: int, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's) with :data:`LOCK_FD_ENV` naming ``fd``; start the
    child with ``pass_fds=(fd,)`` so the descriptor is open there."""
    out = dict(os.environ if env is None else env)
    out[LOCK_FD_ENV] = str(fd)
    return out
