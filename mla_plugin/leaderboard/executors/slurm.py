"""The leaderboard's cells as SLURM jobs (``mla-leaderboard --executor slurm``), through
submitit, and every cell's state (``mla-leaderboard --status``).

- Each unfinished cell is one job (or one task of a job array, ``array: true``) whose
  Python function runs the :class:`~.local.LocalExecutor` on that
  one cell on its node: the same ``mmf_run`` command (:meth:`Cell.command`) writing the same
  ``run.log``, ``cell.json`` and ``metrics.json`` under the same lock, with the job's id and
  node added to ``cell.json``.  The run folder must be on a file system the nodes share.
- On submission ``<save_dir>/slurm_job.json`` records the job id (and the cell's identity);
  submitit's own files (the pickled call, the job's stdout/stderr) go under
  ``<out>/slurm/``.
- Before submitting, a cell whose recorded job is still queued or running on the cluster
  (``squeue``) is not submitted again: the leaderboard waits for that job.  A finished
  cell (by identity) is skipped, as locally.
- A job's state comes from ``squeue`` while SLURM holds it (``-t all``: also for a while
  after it ended), then from ``sacct``; a job known to neither (SLURM drops a job-array
  task cancelled before it started) counts as cancelled.  A cancelled or failed job is
  recorded in ``cell.json`` (``ok: false``, ``slurm_state``), reported with its log tail,
  and submitted afresh by the next invocation.
- Submitting is serialised between leaderboards by the lock of ``<out>/slurm``
  (:mod:`mla_plugin.utils.locks`).
"""

from __future__ import annotations

import dataclasses
import getpass
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence

from mla_plugin.leaderboard.cells import Cell, tail
from mla_plugin.leaderboard.executors import Result
from mla_plugin.leaderboard.executors.local import LocalExecutor
from mla_plugin.utils import locks
from mla_plugin.utils.io import atomic_write_json

JOB_FILE = "slurm_job.json"
# The executor's settings (the `slurm:` section of a leaderboard config file) and their
# defaults; None leaves the choice to the cluster.
SLURM_DEFAULTS = {
    "partition": None,  # sbatch --partition
    "gpus_per_task": None,  # sbatch --gpus-per-task
    "cpus_per_task": 1,  # sbatch --cpus-per-task; also the run's OMP_NUM_THREADS
    "time_min": 120,  # sbatch --time, in minutes
    "array": True,  # one job array per submission (False: one job per cell)
    "array_parallelism": 64,  # at most this many of the array's tasks run at once
    "additional": {},  # further sbatch options, e.g. {qos: high, hold: true}
    "poll_seconds": 10.0,  # how often squeue/sacct are asked while waiting
}
ACTIVE = {
    "PENDING",
    "RUNNING",
    "CONFIGURING",
    "COMPLETING",
    "SUSPENDED",
    "REQUEUED",
    "REQUEUE_HOLD",
    "REQUEUE_FED",
    "RESIZING",
    "SIGNALING",
    "STAGE_OUT",
    "STOPPED",
}
GONE = "GONE"  # known to neither squeue nor sacct


class SlurmError(RuntimeError):
    pass


def check_settings(slurm: dict) -> dict:
    """The `slurm:` settings with their defaults; ValueError naming a bad key."""
    unknown = sorted(set(slurm) - set(SLURM_DEFAULTS))
    if unknown:
        raise ValueError(f"slurm: unknown settings {unknown}; known: {sorted(SLURM_DEFAULTS)}")
    merged = dict(SLURM_DEFAULTS, **slurm)
    for key in ("gpus_per_task", "cpus_per_task", "time_min", "array_parallelism"):
        value = merged[key]
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 1
        ):
            raise ValueError(f"slurm.{key} must be a whole number >= 1, got {value!r}")
    if not isinstance(merged["additional"], dict):
        raise ValueError(
            f"slurm.additional must be a mapping of sbatch options, got {merged['additional']!r}"
        )
    if not isinstance(merged["array"], bool):
        raise ValueError(f"slurm.array must be true or false, got {merged['array']!r}")
    if float(merged["poll_seconds"]) <= 0:
        raise ValueError(f"slurm.poll_seconds must be > 0, got {merged['poll_seconds']!r}")
    return merged


def parse_sbatch_options(options: Sequence[str]) -> dict:
    """``["qos=high", "hold"]`` -> ``{"qos": "high", "hold": True}`` (sbatch's long options
    without their dashes)."""
    parsed = {}
    for opt in options:
        key, eq, value = str(opt).lstrip("-").partition("=")
        if not key:
            raise ValueError(f"--sbatch: expected OPTION or OPTION=VALUE, got {opt!r}")
        parsed[key.replace("-", "_")] = value if eq else True
    return parsed


# ------------------------------------------------------------------ job states
def _query(cmd: list[str]) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except FileNotFoundError as exc:
        raise SlurmError(f"{cmd[0]} not found: the SLURM client commands must be on PATH") from exc
    if proc.returncode:
        raise SlurmError(f"`{' '.join(cmd)}` exited {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


def job_states(job_ids: Iterable[str]) -> dict[str, str]:
    """{job id: SLURM state} (``123`` or an array task's ``123_4``): squeue for the jobs
    SLURM still holds, sacct for the others, :data:`GONE` for jobs known to neither."""
    ids = sorted({str(j) for j in job_ids})
    if not ids:
        return {}
    states = {}
    user = getpass.getuser()
    # -t all: also the jobs that ended within MinJobAge, as slurmctld (not the database) saw them
    for line in _query(["squeue", "-h", "-r", "-t", "all", "-u", user, "-o", "%i|%T"]).splitlines():
        job, _, state = line.strip().partition("|")
        if job in ids:
            states[job] = state.strip()
    rest = [j for j in ids if j not in states]
    if rest:
        out = _query(["sacct", "-n", "-P", "-X", "-j", ",".join(rest), "-o", "JobID,State"])
        for line in out.splitlines():  # a requeued job has several lines: the last wins
            job, _, state = line.strip().partition("|")
            if job in rest and state:
                states[job] = state.split()[0]  # "CANCELLED by 0" -> CANCELLED
    return {j: states.get(j, GONE) for j in ids}


def read_job(cell: Cell) -> dict | None:
    try:
        with open(os.path.join(cell.save_dir, JOB_FILE)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def current_job(cell: Cell) -> dict | None:
    """The cell's recorded job, unless a later local run has replaced its cell.json."""
    job = read_job(cell)
    record = cell.record()
    if job and (
        record is None or "ok" not in record or record.get("slurm_job_id") == job["job_id"]
    ):
        return job
    return None


# ------------------------------------------------------------------ on the node
def run_on_node(cell: Cell, mmf_run: str) -> Result:
    """The job's function: the local executor on one cell, with the job's id and node in
    its cell.json and its thread count from the allocation."""
    cpus = os.environ.get("SLURM_CPUS_PER_TASK", "1")
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, cpus)
    runner = LocalExecutor(jobs=1, mmf_run=mmf_run, progress=False)
    runner.record_extra = {"slurm_job_id": _own_job_id(), "node": os.uname().nodename}
    return runner.run_cell(cell)


def _own_job_id() -> str | None:
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return os.environ.get("SLURM_JOB_ID")


# ------------------------------------------------------------------ submitter
@dataclasses.dataclass
class _Waiting:
    cell: Cell
    job_id: str
    since: float


class SlurmExecutor:
    """Submits the unfinished cells to SLURM and waits for their jobs (module docstring)."""

    def __init__(self, settings: dict, folder: str, mmf_run: str, log=None):
        self.settings = check_settings(settings)
        self.folder = folder  # submitit's files: <out>/slurm
        self.mmf_run = mmf_run
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))

    def _executor(self):
        import submitit

        ex = submitit.SlurmExecutor(folder=os.path.join(self.folder, "%j"))
        s = self.settings
        params = {
            "time": s["time_min"],
            "cpus_per_task": s["cpus_per_task"],
            "ntasks_per_node": 1,
            "nodes": 1,
            "job_name": "mla-leaderboard",
            "array_parallelism": s["array_parallelism"],
            "additional_parameters": dict(s["additional"]),
        }
        if s["partition"]:
            params["partition"] = s["partition"]
        if s["gpus_per_task"]:
            params["gpus_per_task"] = s["gpus_per_task"]
        ex.update_parameters(**params)
        return ex

    def _submit(self, cells: list[Cell]) -> list[str]:
        ex = self._executor()
        if self.settings["array"] and len(cells) > 1:
            with ex.batch():
                jobs = [ex.submit(run_on_node, c, self.mmf_run) for c in cells]
        else:
            jobs = [ex.submit(run_on_node, c, self.mmf_run) for c in cells]
        for cell, job in zip(cells, jobs, strict=True):
            os.makedirs(cell.save_dir, exist_ok=True)
            atomic_write_json(
                {
                    "job_id": job.job_id,
                    "submitted": time.strftime("%Y-%m-%dT%H:%M:%S"),
                    "stdout": str(job.paths.stdout),
                    "stderr": str(job.paths.stderr),
                    "identity": cell.identity,
                },
                os.path.join(cell.save_dir, JOB_FILE),
            )
        return [j.job_id for j in jobs]

    def _plan(self, todo: list[Cell]) -> list[_Waiting]:
        """Attach to the cells' queued or running jobs, submit the others (under the
        submit lock, so two leaderboards never submit one cell twice)."""
        fd = locks.acquire(self.folder, wait=True)  # <out>/slurm/.lock
        try:
            jobs = {c.key: current_job(c) for c in todo}
            states = job_states(j["job_id"] for j in jobs.values() if j)
            waiting, submit = [], []
            for cell in todo:
                job = jobs[cell.key]
                if job and states[job["job_id"]] in ACTIVE:
                    if job.get("identity") != cell.identity:
                        raise ValueError(
                            f"{cell.save_dir}: SLURM job {job['job_id']} is {states[job['job_id']]} "
                            "for other settings of this cell; scancel it or use another --out"
                        )
                    self.log(
                        f"{cell.key}: SLURM job {job['job_id']} is already "
                        f"{states[job['job_id']]}; waiting for it (not submitted again)"
                    )
                    waiting.append(_Waiting(cell, job["job_id"], time.time()))
                else:
                    submit.append(cell)
            if submit:
                ids = self._submit(submit)
                kind = "a job array" if self.settings["array"] and len(submit) > 1 else "jobs"
                self.log(f"submitted {len(submit)} cell(s) as {kind}: {', '.join(ids)}")
                waiting += [_Waiting(c, j, time.time()) for c, j in zip(submit, ids, strict=True)]
            return waiting
        finally:
            locks.release(fd)

    def _finish(self, w: _Waiting, state: str) -> Result:
        cell = w.cell
        record = cell.record() or {}
        if cell.done():
            return Result(cell, True, float(record.get("seconds") or 0.0), record.get("returncode"))
        if state == "COMPLETED":  # the run itself failed; the node's Runner recorded it
            state = "FAILED"
        job = read_job(cell) or {}
        log_tail = tail(cell.log_path) or tail(job.get("stderr", "")) or tail(job.get("stdout", ""))
        log_tail = log_tail or "(no log: the job did not start)"
        note = "known to neither squeue nor sacct: cancelled before it started?"
        shown = "CANCELLED" if state == GONE else state
        record = dict(record or {"identity": cell.identity, "dataset": cell.dataset})
        record.update(
            ok=False,
            slurm_job_id=w.job_id,
            slurm_state=shown,
            ended=time.strftime("%Y-%m-%dT%H:%M:%S"),
        )
        if state == GONE:
            record["note"] = note
        record.setdefault("returncode", None)
        atomic_write_json(record, cell.record_path)
        return Result(
            cell,
            False,
            float(record.get("seconds") or 0.0),
            record.get("returncode"),
            f"SLURM job {w.job_id} {shown}"
            + (f" ({note})" if state == GONE else "")
            + "\n"
            + log_tail,
        )

    def stop(self) -> None:
        """Nothing to end here: the jobs are the cluster's (scancel them)."""

    def run(self, cells: Iterable[Cell], on_result=None) -> list[Result]:
        """Submit the unfinished cells and wait for their jobs; ``on_result(result)`` after
        each.  Interrupted (Ctrl-C), it leaves the jobs to the cluster."""
        cells = list(cells)
        done = [c.done() for c in cells]
        todo = [c for c, d in zip(cells, done, strict=True) if not d or c.needs_analysis()]
        results = [Result(c, True, 0.0, skipped=True) for c in cells if c not in todo]
        if any(done):
            self.log(f"{sum(done)} of {len(cells)} runs already finished (skipped)")
        if not todo:
            return results
        waiting = self._plan(todo)
        try:
            while waiting:
                states = job_states(w.job_id for w in waiting)
                still = []
                for w in waiting:
                    if states[w.job_id] in ACTIVE:
                        still.append(w)
                        continue
                    res = self._finish(w, states[w.job_id])
                    results.append(res)
                    if res.ok:
                        self.log(f"finished {res.cell.key} (SLURM job {w.job_id})")
                    else:
                        self.log(
                            f"\nFAILED {res.cell.key}: {res.log_tail.splitlines()[0]}; "
                            f"log {res.cell.log_path}, last lines:\n"
                            + "\n".join("    " + ln for ln in res.log_tail.splitlines()[1:])
                            + "\n"
                        )
                    if on_result is not None:
                        on_result(res)
                waiting = still
                if waiting:
                    time.sleep(float(self.settings["poll_seconds"]))
        except KeyboardInterrupt:
            self.log(
                "interrupted: the SLURM jobs go on; run the same command to wait for them "
                f"again, or scancel {' '.join(w.job_id for w in waiting)}"
            )
            raise
        return results
