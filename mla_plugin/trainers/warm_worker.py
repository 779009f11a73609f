"""A warm worker: one process that runs many leaderboard cells one after another, so a
cell pays its training rather than the interpreter's start and MMF's imports
(``python -m mla_plugin.trainers.warm_worker FD``; started and fed by the leaderboard's
``mla_plugin.leaderboard.executors.warm``).

Each request comes over the Unix socket ``FD`` (``SOCK_SEQPACKET``): a JSON object
``{"argv": [...], "module": null | "<module>", "log": PATH, "env": {...}}`` with the
cell's lock descriptor attached (``SCM_RIGHTS``).  The worker runs ``mmf_run`` with
``argv`` (or ``python -m <module>``) in this process, exactly as the command line would
(``sys.argv``, MMF's own ``run()``), with fds 1 and 2 on the cell's log and the lock named
by ``MLA_RUN_LOCK_FD`` (:mod:`mla_plugin.utils.locks`), then answers ``{"rc": N}``.

Between cells it puts back what a run changes in the process: the environment,
``sys.argv``, ``sys.stdout``/``sys.stderr``, MMF's registry state (``registry.mapping
["state"]``: the writer, the config, the device), MMF's log handlers
(:func:`~mla_plugin.trainers.run_logging.close_run_handlers`, so each ``train.log`` gets
only its own run's lines), and the locks the run held.  Every run seeds its own RNGs.
An exception ends the cell (exit status 1, the traceback in its log), not the worker; a
crash of the process ends only the cell it was running (the leaderboard starts another
worker for the next)."""

from __future__ import annotations

import json
import os
import runpy
import socket
import sys
import traceback

from mla_plugin.utils import locks

MAX_MESSAGE = 1 << 20


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def run_one(request: dict, lock_fd: int | None, base_state: dict) -> int:
    """Run one cell's command in this process; its exit status."""
    import mmf_cli.run
    from mmf.common.registry import registry

    from mla_plugin.trainers.run_logging import close_run_handlers

    env, argv = dict(os.environ), list(sys.argv)
    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    os.environ.update(request.get("env") or {})
    if lock_fd is not None:
        os.environ[locks.LOCK_FD_ENV] = str(lock_fd)
    registry.mapping["state"] = dict(base_state)
    close_run_handlers()
    rc = 0
    try:
        if request.get("module"):
            sys.argv = [request["module"], *request["argv"]]
            runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
        else:
            sys.argv = ["mmf_run", *request["argv"]]
            mmf_cli.run.run()
    except SystemExit as exc:
        rc = _exit_code(exc)
    except BaseException:  # noqa: BLE001 - the cell fails, the worker goes on
        traceback.print_exc()
        rc = 1
    finally:
        sys.stdout, sys.stderr = stdout, stderr
        sys.stdout.flush()
        sys.stderr.flush()
        close_run_handlers()
        for fd in set(locks._HELD.values()):  # the cell's lock stays the leaderboard's
            locks.release(fd)
        if lock_fd is not None:
            try:
                os.close(lock_fd)
            except OSError:
                pass  # released above
        registry.mapping["state"] = dict(base_state)
        os.environ.clear()
        os.environ.update(env)
        sys.argv = argv
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)
    return rc


def serve(fd: int) -> None:
    """Answer requests on socket ``fd`` until it closes."""
    sock = socket.socket(fileno=fd)
    import mmf_cli.run  # noqa: F401 - MMF's imports (and the bridge) once, here
    from mmf.common.registry import registry
    from mmf.utils.env import setup_imports

    import mla_plugin

    setup_imports()
    mla_plugin.register()
    base_state = dict(registry.mapping["state"])
    while True:
        data, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE, 1)
        if not data:
            return
        rc = run_one(json.loads(data), fds[0] if fds else None, base_state)
        sock.send(json.dumps({"rc": rc}).encode())


if __name__ == "__main__":
    serve(int(sys.argv[1]))
