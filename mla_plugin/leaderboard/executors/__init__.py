"""Where the leaderboard's cells run: :class:`~.local.LocalExecutor` (subprocesses on this
machine) or :class:`~.slurm.SlurmExecutor` (SLURM jobs through submitit), both behind
:class:`Executor`.  Either way a cell is the same command writing the same files under the
same lock (:mod:`mla_plugin.utils.locks`)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
from collections.abc import Callable, Iterable
from typing import Protocol

from mla_plugin.leaderboard.cells import Cell


@dataclasses.dataclass
class Result:
    """How a cell's run ended (``skipped``: it was already done)."""

    cell: Cell
    ok: bool
    seconds: float
    returncode: int | None = None
    log_tail: str = ""
    skipped: bool = False


class Executor(Protocol):
    """Runs cells; ``on_result(result)`` is called (in the caller's thread) after each cell
    that ran.  ``stop()`` ends the runs this executor started."""

    mmf_run: str

    def run(
        self, cells: Iterable[Cell], on_result: Callable[[Result], None] | None = None
    ) -> list[Result]: ...

    def stop(self) -> None: ...


def mmf_run_path() -> str:
    """``$MLA_LEADERBOARD_MMF_RUN`` (a launcher taking mmf_run's arguments, e.g. a wrapper
    around torchrun), else the ``mmf_run`` next to this Python, else the one on PATH."""
    custom = os.environ.get("MLA_LEADERBOARD_MMF_RUN")
    if custom:
        return custom
    local = os.path.join(os.path.dirname(sys.executable), "mmf_run")
    if os.path.isfile(local):
        return local
    found = shutil.which("mmf_run")
    if not found:
        raise FileNotFoundError(
            "mmf_run not found next to this Python or on PATH (pip install mmf)"
        )
    return found


def make_executor(settings, log) -> Executor:
    """The executor ``settings`` (:class:`~mla_plugin.leaderboard.settings.Settings`) ask for."""
    if settings.executor == "slurm":
        from mla_plugin.leaderboard.executors.slurm import SlurmExecutor

        if not shutil.which("sbatch"):
            raise FileNotFoundError("--executor slurm: sbatch not found on PATH (no SLURM client)")
        folder = os.path.join(os.path.abspath(settings.out), "slurm")
        return SlurmExecutor(settings.slurm, folder, mmf_run_path(), log=log)
    from mla_plugin.leaderboard.executors.local import LocalExecutor

    return LocalExecutor(
        jobs=settings.jobs,
        progress=settings.progress,
        log=log,
        gpus=list(settings.gpus),
        warm=settings.warm_workers,
    )
