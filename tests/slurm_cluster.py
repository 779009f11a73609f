"""A real single-node SLURM cluster under one folder, for the leaderboard's SLURM tests and
for trying ``mla-leaderboard --executor slurm`` by hand:

    python -m tests.slurm_cluster up /tmp/slurm      # prints `export SLURM_CONF=...`
    python -m tests.slurm_cluster down /tmp/slurm

Debian's packages (installed with apt-get when missing; root is needed): munge, MariaDB,
slurmdbd, slurmctld and slurmd.  Everything they write (configs, state, spool, pid and log
files, munge's socket, MariaDB's data) lives under the folder; ports are picked free.
Accounting (slurmdbd on a local MariaDB) is on because submitit learns a job's state from
``sacct`` alone: without it every state reads UNKNOWN and a cancelled job is never seen as
finished.  Every step that fails raises :class:`ClusterError` with the daemon's log tail.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.support import apt_lock

PACKAGES = ["slurm-wlm", "munge", "mariadb-server-core", "slurmdbd", "mariadb-client-core"]
COMMANDS = [
    "munged",
    "mariadbd",
    "mariadb-install-db",
    "mariadb",
    "slurmdbd",
    "slurmctld",
    "slurmd",
]
CLUSTER = "mlatest"
START_TIMEOUT = 60.0


class ClusterError(RuntimeError):
    pass


def _run(cmd, what, env=None, timeout=120):
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if proc.returncode:
        raise ClusterError(
            f"{what}: `{' '.join(cmd)}` exited {proc.returncode}:\n"
            f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        )
    return proc.stdout


def install():
    """apt-get the packages unless their daemons are already on PATH (root needed)."""
    missing = [c for c in COMMANDS if not shutil.which(c)]
    if not missing:
        return
    if os.geteuid() != 0:
        raise ClusterError(f"{missing} missing and not root: apt-get install {' '.join(PACKAGES)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    with apt_lock():  # another test process may be installing Chromium
        _run(["apt-get", "update"], "apt-get update", env=env, timeout=900)
        _run(
            ["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES],
            "installing SLURM",
            env=env,
            timeout=1800,
        )
    still = [c for c in COMMANDS if not shutil.which(c)]
    if still:
        raise ClusterError(f"{still} still missing after apt-get install {' '.join(PACKAGES)}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path, n=30):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return "(no log)"


class Cluster:
    """The cluster's daemons under ``root``; :meth:`up` starts them, :meth:`down` stops them."""

    def __init__(self, root: str):
        self.root = os.path.abspath(root)
        self.etc = os.path.join(self.root, "etc")
        self.conf = os.path.join(self.etc, "slurm.conf")
        self.munge_socket = os.path.join(self.root, "munge", "munge.socket")
        self.state_file = os.path.join(self.root, "cluster.json")
        self.host = socket.gethostname().split(".")[0]
        self.pids: dict[str, int] = {}

    @property
    def env(self) -> dict[str, str]:
        """What a client (sbatch, sacct, submitit) needs in its environment."""
        return {"SLURM_CONF": self.conf}

    def _path(self, *parts) -> str:
        path = os.path.join(self.root, *parts)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return path

    def _start(self, name, cmd, log):
        with open(log, "ab") as f:
            proc = subprocess.Popen(
                cmd,
                stdout=f,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(os.environ, **self.env),
                start_new_session=True,
            )
        self.pids[name] = proc.pid
        self._save()
        return proc

    def _wait(self, name, proc, log, ready):
        end = time.time() + START_TIMEOUT
        while not ready():
            if proc.poll() is not None:
                raise ClusterError(f"{name} exited {proc.returncode}; its log {log}:\n{_tail(log)}")
            if time.time() > end:
                raise ClusterError(
                    f"{name} not ready after {START_TIMEOUT:.0f} s; log:\n{_tail(log)}"
                )
            time.sleep(0.1)

    def _ok(self, cmd) -> bool:
        env = dict(os.environ, **self.env)
        return subprocess.run(cmd, capture_output=True, env=env, timeout=30).returncode == 0

    def _save(self):
        with open(self.state_file, "w") as f:
            json.dump({"pids": self.pids, "conf": self.conf}, f)

    # ------------------------------------------------------------------ daemons
    def _munge(self):
        os.makedirs(os.path.dirname(self.munge_socket), mode=0o755, exist_ok=True)
        os.chmod(os.path.dirname(self.munge_socket), 0o755)  # munged refuses looser modes
        key = self._path("munge", "munge.key")
        if not os.path.exists(key):
            with open(key, "wb") as f:
                f.write(os.urandom(1024))
        os.chmod(key, 0o600)
        log = self._path("log", "munged.log")
        cmd = ["munged", "-F", "-f", f"--socket={self.munge_socket}", f"--key-file={key}"]
        cmd += [f"--pid-file={self._path('run', 'munged.pid')}", f"--log-file={log}"]
        cmd += [f"--seed-file={self._path('munge', 'munged.seed')}"]
        proc = self._start("munged", cmd, self._path("log", "munged.out"))
        self._wait("munged", proc, log, lambda: os.path.exists(self.munge_socket))

    def _mariadb(self):
        data = self._path("mysql", "data", "x")[:-2]
        self.db_socket = self._path("mysql", "mysqld.sock")
        self.db_port = _free_port()
        if not os.path.isdir(os.path.join(data, "mysql")):
            _run(
                [
                    "mariadb-install-db",
                    "--no-defaults",
                    f"--datadir={data}",
                    "--user=root",
                    "--auth-root-authentication-method=normal",
                    "--skip-test-db",
                ],
                "mariadb-install-db",
            )
        log = self._path("log", "mariadbd.log")
        cmd = ["mariadbd", "--no-defaults", f"--datadir={data}", f"--socket={self.db_socket}"]
        cmd += [f"--port={self.db_port}", "--bind-address=127.0.0.1", "--user=root"]
        cmd += [f"--pid-file={self._path('run', 'mariadbd.pid')}", f"--log-error={log}"]
        cmd += ["--skip-name-resolve"]
        proc = self._start("mariadbd", cmd, self._path("log", "mariadbd.out"))
        ping = [
            "mariadb",
            "--no-defaults",
            f"--socket={self.db_socket}",
            "-uroot",
            "-e",
            "select 1",
        ]
        self._wait("mariadbd", proc, log, lambda: self._ok(ping))

    def _write_confs(self):
        self.dbd_port = _free_port()
        self.ctld_port, self.d_port = _free_port(), _free_port()
        auth = f"AuthType=auth/munge\nAuthInfo=socket={self.munge_socket}\n"
        dbd = (
            auth + "DbdHost=localhost\n"
            f"DbdPort={self.dbd_port}\n"
            "SlurmUser=root\n"
            f"LogFile={self._path('log', 'slurmdbd.log')}\n"
            f"PidFile={self._path('run', 'slurmdbd.pid')}\n"
            "StorageType=accounting_storage/mysql\n"
            "StorageHost=127.0.0.1\n"
            f"StoragePort={self.db_port}\n"
            "StorageUser=root\n"
            "StorageLoc=slurm_acct_db\n"
        )
        dbd_conf = self._path("etc", "slurmdbd.conf")
        with open(dbd_conf, "w") as f:
            f.write(dbd)
        os.chmod(dbd_conf, 0o600)  # slurmdbd refuses a readable one
        conf = (
            f"ClusterName={CLUSTER}\n"
            f"SlurmctldHost={self.host}(127.0.0.1)\n" + auth + f"SlurmctldPort={self.ctld_port}\n"
            f"SlurmdPort={self.d_port}\n"
            "SlurmUser=root\nSlurmdUser=root\n"
            f"StateSaveLocation={self._path('state', 'x')[:-2]}\n"
            f"SlurmdSpoolDir={self._path('spool', 'x')[:-2]}\n"
            f"SlurmctldPidFile={self._path('run', 'slurmctld.pid')}\n"
            f"SlurmdPidFile={self._path('run', 'slurmd.pid')}\n"
            f"SlurmctldLogFile={self._path('log', 'slurmctld.log')}\n"
            f"SlurmdLogFile={self._path('log', 'slurmd.log')}\n"
            "ProctrackType=proctrack/linuxproc\n"
            "TaskPlugin=task/none\n"
            "JobAcctGatherType=jobacct_gather/none\n"
            "SelectType=select/cons_tres\n"
            "SelectTypeParameters=CR_CPU\n"
            "MpiDefault=none\n"
            "ReturnToService=2\n"
            "KillWait=5\n"
            "MinJobAge=600\n"
            "AccountingStorageType=accounting_storage/slurmdbd\n"
            "AccountingStorageHost=localhost\n"
            f"AccountingStoragePort={self.dbd_port}\n"
            f"AccountingStoragePass={self.munge_socket}\n"
            f"NodeName={self.host} NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN\n"
            f"PartitionName=debug Nodes={self.host} Default=YES MaxTime=INFINITE State=UP\n"
        )
        with open(self.conf, "w") as f:
            f.write(conf)

    def _slurm(self):
        log = self._path("log", "slurmdbd.log")
        proc = self._start("slurmdbd", ["slurmdbd", "-D"], self._path("log", "slurmdbd.out"))
        clusters = ["sacctmgr", "-n", "-P", "show", "cluster", "format=cluster"]
        self._wait("slurmdbd", proc, log, lambda: self._ok(clusters))
        env = dict(os.environ, **self.env)
        if CLUSTER not in _run(clusters, "sacctmgr show cluster", env=env).split():
            _run(["sacctmgr", "-i", "add", "cluster", CLUSTER], "sacctmgr add cluster", env=env)
        log = self._path("log", "slurmctld.log")
        proc = self._start(
            "slurmctld", ["slurmctld", "-D", "-i"], self._path("log", "slurmctld.out")
        )
        self._wait("slurmctld", proc, log, lambda: self._ok(["scontrol", "ping"]))
        log = self._path("log", "slurmd.log")
        proc = self._start(
            "slurmd", ["slurmd", "-D", "-N", self.host], self._path("log", "slurmd.out")
        )

        def idle():
            out = subprocess.run(
                ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, env=env, timeout=30
            ).stdout
            return out.strip().startswith("idle")

        self._wait("slurmd", proc, log, idle)

    # ------------------------------------------------------------------ public
    def up(self) -> Cluster:
        """Start every daemon (about a second once installed); raise ClusterError naming
        the step that failed."""
        install()
        os.makedirs(self.etc, exist_ok=True)
        try:
            self._munge()
            self._mariadb()
            self._write_confs()
            self._slurm()
        except BaseException:
            self.down()
            raise
        return self

    def down(self):
        """Stop the daemons this cluster started (by the pids it recorded)."""
        pids = self.pids
        if not pids and os.path.exists(self.state_file):
            with open(self.state_file) as f:
                pids = json.load(f)["pids"]
        for name in ("slurmd", "slurmctld", "slurmdbd", "mariadbd", "munged"):
            pid = pids.get(name)
            if pid:
                try:
                    os.killpg(pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
                end = time.time() + 20
                while time.time() < end and _alive(pid):
                    time.sleep(0.05)
                if _alive(pid):
                    os.killpg(pid, signal.SIGKILL)
        self.pids = {}


def _alive(pid) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)  # reap our own child, if it is one
    except ChildProcessError:
        pass
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A running cluster for the session, its SLURM_CONF in os.environ (so subprocesses and
    submitit find it); its daemons are stopped at the end.  Fails (never skips) with the
    failing step's message."""
    cluster = Cluster(str(tmp_path_factory.mktemp("slurm")))
    start = time.time()
    try:
        cluster.up()
    except ClusterError as exc:
        pytest.fail(f"the local SLURM cluster did not start: {exc}")
    cluster.startup_seconds = time.time() - start
    saved = {k: os.environ.get(k) for k in cluster.env}
    os.environ.update(cluster.env)
    try:
        yield cluster
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        cluster.down()


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] not in ("up", "down"):
        print("usage: python -m tests.slurm_cluster up|down FOLDER", file=sys.stderr)
        return 2
    cluster = Cluster(argv[1])
    if argv[0] == "up":
        start = time.time()
        cluster.up()
        print(f"# cluster up in {time.time() - start:.1f} s; stop: {sys.argv[0]} down {argv[1]}")
        print(f"export SLURM_CONF={cluster.conf}")
    else:
        cluster.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
