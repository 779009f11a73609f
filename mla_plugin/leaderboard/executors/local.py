"""The local executor: each cell an ``mmf_run`` subprocess on this machine.

- Cells run in ``jobs`` parallel subprocesses; each gets ``cpu_count // jobs`` threads
  (``OMP_NUM_THREADS``, unless set) so parallel runs do not oversubscribe the CPU, and,
  given ``gpus``, job slot k sees only GPU ``gpus[k % len(gpus)]`` (``CUDA_VISIBLE_DEVICES``).
- A cell already done (:meth:`Cell.done`) is skipped, so an interrupted leaderboard resumes;
  a cell interrupted mid-run resumes from its ``current.ckpt`` (``checkpoint.resume=True``).
- A failed cell is reported with the tail of its log and the others go on.
- With ``jobs > 1`` the first pending cell of each dataset runs before that dataset's
  others, so data caches are built once, not by every parallel job; once per executor
  (a dataset whose first cell succeeded is not held back again by later ``run`` calls,
  such as the tuning rounds).
- A cell's folder is locked (:func:`mla_plugin.utils.locks.acquire`) by the leaderboard and
  handed to its ``mmf_run`` (``pass_fds`` and ``MLA_RUN_LOCK_FD``): if the leaderboard is
  killed while its runs go on, a restarted leaderboard waits for those runs instead of
  starting a second writer into the same folder, then skips them once finished.
- After a successful run, the cell's analysis step: the modality gap
  (``python -m mla_plugin.analysis.gap --save-dir DIR``, ``gap.json``) for the methods of
  ``--gap-methods``, recorded in ``cell.json`` (``gap``).
- On SLURM (:mod:`~.slurm`) each job runs this executor on its one cell.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

from mla_plugin.leaderboard.cells import Cell, tail
from mla_plugin.leaderboard.executors import Result, mmf_run_path
from mla_plugin.leaderboard.executors.warm import WarmWorker, warm_request
from mla_plugin.utils import locks
from mla_plugin.utils.io import atomic_write_json


def child_env(jobs: int) -> dict[str, str]:
    env = dict(os.environ)
    threads = str(max(1, (os.cpu_count() or 1) // max(1, jobs)))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, threads)
    return env


class LocalExecutor:
    """Runs cells in ``jobs`` parallel subprocesses (see the module docstring)."""

    def __init__(
        self,
        jobs: int = 1,
        mmf_run: str | None = None,
        progress: bool = True,
        log=None,
        gpus: Sequence[str] = (),
        warm: bool = False,
    ):
        self.jobs = max(1, int(jobs))
        # job slot k runs on GPU gpus[k % len(gpus)] (CUDA_VISIBLE_DEVICES), if any are given
        self.gpus = [str(g) for g in gpus]
        self._slots: queue.Queue[int] = queue.Queue()
        for k in range(self.jobs):
            self._slots.put(k)
        self.mmf_run = mmf_run or mmf_run_path()
        self.progress = progress
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.env = child_env(self.jobs)
        self._procs: dict[int, subprocess.Popen] = {}
        self._lock = threading.Lock()
        self._stopping = False
        # added to every cell.json this runner writes (a SLURM job's id and node)
        self.record_extra: dict = {}
        self.warm = bool(warm)  # run cells in one warm worker per slot (executors/warm.py)
        self._workers: dict[int, WarmWorker] = {}
        # datasets whose first cell has run successfully here: their caches exist
        self._primed: set[str] = set()

    def _lock_cell(self, cell: Cell) -> int | None:
        """Lock the cell's folder; wait while another process (an ``mmf_run`` left running
        by a killed leaderboard) holds it.  None if stopped meanwhile."""

        def waiting(holder: str) -> None:
            self.log(
                f"waiting for {cell.key}: an earlier run (pid {holder}) still holds "
                f"{locks.lock_path(cell.save_dir)}"
            )

        return locks.acquire(cell.save_dir, wait=True, on_wait=waiting, stop=lambda: self._stopping)

    def run_cell(self, cell: Cell) -> Result:
        os.makedirs(cell.save_dir, exist_ok=True)
        lock = self._lock_cell(cell)
        if lock is None:
            return Result(cell, False, 0.0, None, "not started (interrupted)")
        try:
            if cell.done():  # finished by an mmf_run that outlived the leaderboard that started it
                record = cell.record()
                if record and "ok" not in record:
                    atomic_write_json(
                        dict(
                            record,
                            ok=True,
                            returncode=None,
                            note="finished after its leaderboard was killed",
                        ),
                        cell.record_path,
                    )
                self._analyse(cell)
                return Result(cell, True, 0.0, skipped=True)
            result = self._run_locked(cell, lock)
            if result.ok:
                self._analyse(cell)
            return result
        finally:
            locks.release(lock)

    def _analyse(self, cell: Cell) -> None:
        """The cell's analysis step after its run (the modality gap, ``gap.json``), in the
        cell's folder and log; recorded in ``cell.json`` as ``gap``.  A failed step is
        logged and tried again by the next leaderboard; the run stays finished."""
        cmd = cell.gap_command()
        if cmd is None or os.path.isfile(cell.gap_path):
            return
        returncode = self._execute(cmd, cell)
        if returncode is None:
            return
        ok = returncode == 0 and os.path.isfile(cell.gap_path)
        record = cell.record() or {}
        record["gap"] = {"command": cmd, "returncode": returncode, "ok": ok}
        atomic_write_json(record, cell.record_path)
        if not ok:
            self.log(f"modality gap failed for {cell.key} (exit {returncode}); log {cell.log_path}")

    def _run_locked(self, cell: Cell, lock: int) -> Result:
        cmd = cell.command(self.mmf_run)
        record = {
            "identity": cell.identity,
            "data": cell.data,
            "dataset": cell.dataset,
            "mmf_dataset": cell.mmf_dataset,
            "config": cell.config,
            "method": cell.variant.method,
            "variant": cell.variant.name,
            "variant_overrides": [f"{k}={v}" for k, v in cell.variant.overrides],
            "overrides": list(cell.overrides),
            "seed": cell.seed,
            "missing_rate": cell.missing_rate,
            "train_mask": list(cell.train_mask) if cell.train_mask else None,
            "command": cmd,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
            **self.record_extra,
        }
        # written before the run starts (without "ok": running or interrupted), completed after
        atomic_write_json(record, cell.record_path)
        start = time.time()
        returncode = self._execute(cmd, cell, dict(cell.env), lock, record)
        if returncode is None:
            return Result(cell, False, 0.0, None, "not started (interrupted)")
        seconds = time.time() - start
        ok = returncode == 0 and cell.done()
        record.update(seconds=round(seconds, 2), returncode=returncode, ok=ok)
        atomic_write_json(record, cell.record_path)
        log_tail = "" if ok else tail(cell.log_path)
        if returncode == 0 and not ok:
            log_tail += "\n(mmf_run exited 0 but wrote no metrics.json)"
        return Result(cell, ok, seconds, returncode, log_tail)

    def _execute(self, cmd, cell: Cell, extra=None, lock=None, record=None) -> int | None:
        """Run ``cmd`` for ``cell`` in one of the ``jobs`` slots, its output appended to the
        cell's log: in the slot's warm worker, or a subprocess; ``extra``: the cell's own
        environment variables, ``lock``: the cell's lock, handed to the run.  Its exit
        status, None if stopped before it started."""
        env = dict(self.env, **(extra or {}))
        with open(cell.log_path, "ab") as log:
            log.write(("\n$ " + " ".join(cmd) + "\n").encode())
            log.flush()
            slot = self._slots.get()
            if self.gpus:
                env = dict(env, CUDA_VISIBLE_DEVICES=self.gpus[slot % len(self.gpus)])
                if record is not None:
                    record["gpu"] = env["CUDA_VISIBLE_DEVICES"]
            try:
                request = warm_request(cmd, self.mmf_run) if self.warm else None
                if request is not None:
                    return self._run_warm(slot, request, cell, extra or {}, lock)
                with self._lock:
                    if self._stopping:
                        return None
                    # the run inherits the lock, so it stays held while the run lives
                    proc = subprocess.Popen(
                        cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                        env=locks.child_env(lock, env) if lock is not None else env,
                        pass_fds=(lock,) if lock is not None else (),
                    )  # fmt: skip
                    self._procs[proc.pid] = proc
                    if lock is not None:
                        locks.write_holder(lock, proc.pid)
                try:
                    return proc.wait()
                finally:
                    with self._lock:
                        self._procs.pop(proc.pid, None)
            finally:
                self._slots.put(slot)

    def _run_warm(self, slot: int, request: dict, cell: Cell, extra, lock) -> int | None:
        """``request`` in slot ``slot``'s warm worker (started with the slot's environment;
        a cell's own variables, e.g. its trial, travel with the request)."""
        worker = self._workers.get(slot)
        if worker is None:
            base = dict(self.env)
            if self.gpus:
                base["CUDA_VISIBLE_DEVICES"] = self.gpus[slot % len(self.gpus)]
            worker = self._workers[slot] = WarmWorker(base)

        def started(proc):
            with self._lock:
                if self._stopping:
                    raise InterruptedError
                self._procs[proc.pid] = proc
                if lock is not None:
                    locks.write_holder(lock, proc.pid)

        try:
            return worker.run(request, cell.log_path, extra, lock, started)
        except InterruptedError:
            return None
        finally:
            with self._lock:
                if worker.proc is not None:
                    self._procs.pop(worker.proc.pid, None)

    def close(self) -> None:
        """End the warm workers (each finishes nothing: they are idle between cells)."""
        for worker in self._workers.values():
            worker.close()
        self._workers.clear()

    def stop(self):
        """Terminate the running subprocesses (ours, by pid)."""
        with self._lock:
            self._stopping = True
            procs = list(self._procs.values())
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        self.close()

    def run(self, cells: Iterable[Cell], on_result=None) -> list[Result]:
        """Run the unfinished cells; ``on_result(result)`` is called (in this thread)
        after each cell that ran."""
        cells = list(cells)
        done = [c.done() for c in cells]
        todo = [c for c, d in zip(cells, done, strict=True) if not d or c.needs_analysis()]
        results = [Result(c, True, 0.0, skipped=True) for c in cells if c not in todo]
        if any(done):
            analyse = sum(1 for c in todo if c.done())
            self.log(
                f"{sum(done)} of {len(cells)} runs already finished (skipped); "
                f"{len(todo) - analyse} to run with {self.jobs} job(s)"
                + (f"; {analyse} finished run(s) to analyse (modality gap)" if analyse else "")
            )
        if not todo:
            return results
        from tqdm.auto import tqdm

        bar = tqdm(
            total=len(cells),
            initial=len(results),
            unit="run",
            desc="leaderboard",
            disable=not self.progress,
            dynamic_ncols=True,
            file=sys.stderr,
        )
        # The first run of each dataset goes alone (alongside other datasets' first runs):
        # it builds the dataset's caches (e.g. avdigits' fbank) once instead of in every job.
        # A dataset primed by an earlier call (a tuning round before) goes in parallel.
        by_dataset: dict[str, list[Cell]] = {}
        for c in todo:
            by_dataset.setdefault(c.dataset, []).append(c)
        first = [c for c in todo if c.dataset in self._primed]
        first += [cells_[0] for ds, cells_ in by_dataset.items() if ds not in self._primed]
        rest = {ds: cells_[1:] for ds, cells_ in by_dataset.items() if ds not in self._primed}
        if self.jobs == 1:
            first, rest = todo, {}
        failures = 0
        pool = ThreadPoolExecutor(max_workers=self.jobs)
        try:
            futures = {pool.submit(self.run_cell, c) for c in first}
            while futures:
                done, futures = wait(futures, return_when=FIRST_COMPLETED)
                for fut in done:
                    res = fut.result()
                    results.append(res)
                    if res.ok:
                        self._primed.add(res.cell.dataset)
                    futures |= {
                        pool.submit(self.run_cell, c) for c in rest.pop(res.cell.dataset, [])
                    }
                    bar.update(1)
                    if on_result is not None and not res.skipped:
                        on_result(res)
                    if not res.ok:
                        failures += 1
                        bar.set_postfix(failed=failures)
                        tqdm.write(
                            f"\nFAILED {res.cell.key} (exit {res.returncode}, "
                            f"{res.seconds:.0f} s); log {res.cell.log_path}, last lines:\n"
                            + "\n".join("    " + line for line in res.log_tail.splitlines())
                            + "\n",
                            file=sys.stderr,
                        )
        except KeyboardInterrupt:
            self.stop()
            pool.shutdown(wait=True, cancel_futures=True)
            bar.close()
            raise
        pool.shutdown(wait=True)
        bar.close()
        return results
