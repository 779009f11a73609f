"""Warm workers for the local executor: one long-lived process per job slot that runs
that slot's cells one after another (``mla_plugin.trainers.warm_worker``), so a cell
costs its training and not a fresh interpreter, MMF's imports and the plugin's
registration (measured in docs/benchmarks.md, "(g)").

- A cell's command is the one the one-process-per-cell path runs (``mmf_run ARGS``, or
  ``python [-W ...] -m MODULE ARGS`` for the probes and the modality gap), given to the
  worker as its arguments; its output goes to the same log, its lock descriptor is handed
  over (``SCM_RIGHTS``) as ``pass_fds`` hands it to a subprocess, and the run writes the
  same files (``metrics.json`` byte-identical: tests/leaderboard/test_warm_workers.py).
- Another launcher (``MLA_LEADERBOARD_MMF_RUN``) runs as a subprocess, as before.
- A worker that dies (a crash, a kill) fails only the cell it was running; the next cell
  of its slot starts a new worker.  ``stop()`` terminates the workers like subprocesses.
This module imports neither torch nor MMF (the workers do)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

WORKER_MODULE = "mla_plugin.trainers.warm_worker"


def warm_request(cmd: list[str], mmf_run: str) -> dict | None:
    """The worker's request for ``cmd`` (``{"argv", "module"}``), or None when ``cmd`` is
    not one a worker runs (another launcher)."""
    if os.environ.get("MLA_LEADERBOARD_MMF_RUN"):  # the user's launcher runs every cell
        return None
    if cmd[0] == mmf_run and os.path.basename(mmf_run) == "mmf_run":
        return {"argv": cmd[1:], "module": None}
    if cmd[0] != sys.executable:
        return None
    rest = cmd[1:]
    while rest[:1] == ["-W"]:  # warning filters only change what the log shows
        rest = rest[2:]
    if rest[:1] == ["-m"] and len(rest) > 1:
        return {"argv": rest[2:], "module": rest[1]}
    return None


class WarmWorker:
    """One worker process (started on first use, restarted after a crash)."""

    def __init__(self, env: dict[str, str]):
        self.env = env
        self.proc: subprocess.Popen | None = None
        self.sock: socket.socket | None = None

    def start(self) -> subprocess.Popen:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", WORKER_MODULE, str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=self.env,
        )
        theirs.close()
        self.sock = ours
        return self.proc

    def run(self, request: dict, log_path: str, env: dict, lock: int | None, on_start) -> int:
        """Run one request; its exit status (the worker's, negative for a signal, when the
        worker died running it).  ``on_start(proc)`` is called with the worker process
        before the cell runs (for ``stop()``)."""
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        on_start(self.proc)
        message = json.dumps(dict(request, log=log_path, env=env)).encode()
        try:
            socket.send_fds(self.sock, [message], [lock] if lock is not None else [])
            answer = self.sock.recv(4096)
        except OSError:
            answer = b""
        if answer:
            return int(json.loads(answer)["rc"])
        pid, returncode = self.proc.pid, self.proc.wait()  # the worker died with the cell
        self.close()
        with open(log_path, "a") as log:
            log.write(f"\n(warm worker {pid} ended with status {returncode})\n")
        return returncode if returncode else 1

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()  # the worker's recv sees the end and it exits
            self.sock = None
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None
