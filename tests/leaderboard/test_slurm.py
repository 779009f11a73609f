"""``mla-leaderboard --executor slurm`` on a real single-node SLURM cluster
(tests/slurm_cluster.py): submission as a job array, a cancelled job reported and rerun, a
queued job not submitted twice by a restarted leaderboard, ``--status``, and reports equal
to ``--executor local``'s; plus the settings and ``--status`` of local runs, without the
cluster."""

import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from mla_plugin.leaderboard import cli, status
from mla_plugin.leaderboard.executors import slurm
from mla_plugin.leaderboard.plan import plan
from tests.support import REPO, subprocess_env

TINY = [
    "training.max_epochs=1",
    "dataset_config.synthetic.sizes.train=512",
    "dataset_config.synthetic.sizes.val=256",
    "dataset_config.synthetic.sizes.test=256",
]
BOARD = ["--datasets", "synthetic", "--methods", "concat", "mla", "--seeds", "1"]
BOARD += ["--references", "none"]
BOARD += ["--gap-methods", "none", "--no-progress"]
# one thread per run under both executors, so their numbers can be compared
THREADS = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


# ------------------------------------------------------------- no cluster
def test_slurm_settings_from_a_yaml_file_and_flags(tmp_path, capsys):
    spec = tmp_path / "lb.yaml"
    spec.write_text(
        "executor: slurm\nslurm:\n  partition: gpu\n  gpus-per-task: 1\n"
        "  additional: {qos: high}\n  array: false\n"
    )
    s = cli.resolve_settings(
        ["--config", str(spec), "--cpus-per-task", "4", "--sbatch", "hold", "--sbatch=mem=8G"]
    )
    assert s.executor == "slurm"
    assert s.slurm == dict(
        slurm.SLURM_DEFAULTS,
        partition="gpu",
        gpus_per_task=1,
        cpus_per_task=4,
        array=False,
        additional={"qos": "high", "hold": True, "mem": "8G"},
    )
    assert cli.resolve_settings(["--array"]).slurm["array"] is True
    assert cli.resolve_settings([]).executor == "local"
    spec.write_text("slurm: {partiton: gpu}\n")
    _usage_error(capsys, ["--config", str(spec)], r"unknown settings \['partiton'\]")
    spec.write_text("slurm: {time_min: 0}\n")
    _usage_error(
        capsys, ["--config", str(spec)], r"slurm.time_min must be a whole number >= 1, got 0"
    )
    _usage_error(capsys, ["--executor", "slurm", "--gpus", "0"], "on SLURM use --gpus-per-task")


def _usage_error(capsys, argv, match):
    """A bad setting is a usage error: exit 2, the message on stderr."""
    with pytest.raises(SystemExit) as exc:
        cli.resolve_settings(argv)
    assert exc.value.code == 2
    assert re.search(match, capsys.readouterr().err)


def test_status_of_local_cells(tmp_path, monkeypatch, capsys):
    """done, failed, running (an mmf_run holds the lock), interrupted and never-run cells,
    read from their folders alone."""
    cells = plan(["synthetic"], ["concat", "mla"], [1, 2, 3], [0.0], str(tmp_path), root=REPO)
    done, failed, running, interrupted = cells[:4]
    extras = [{"ok": True}, {"ok": False, "returncode": 3}, {}, {}]
    for cell, extra in zip((done, failed, running, interrupted), extras, strict=True):
        os.makedirs(cell.save_dir)
        with open(cell.record_path, "w") as f:
            json.dump({"identity": cell.identity, **extra}, f)
    open(done.metrics_path, "w").write("{}")
    fd = os.open(running.lock_path, os.O_RDWR | os.O_CREAT)
    os.write(fd, b"4242")
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        rows = status.status(cells)
        monkeypatch.chdir(REPO)
        args = ["--status", "--out", str(tmp_path), *BOARD[:5], "--seeds", "3"]
        args += ["--references", "none"]
        assert cli.main(args) == 0
    finally:
        os.close(fd)
    states = [(c.key, s, d) for c, s, d in rows]
    assert states == [
        (done.key, "done", ""),
        (failed.key, "failed", f"exit 3; log {failed.log_path}"),
        (running.key, "running", "local pid 4242"),
        (interrupted.key, "pending", "interrupted"),
        (cells[4].key, "pending", ""),
        (cells[5].key, "pending", ""),
    ]
    out = capsys.readouterr().out
    assert "6 cells: 1 done, 1 running, 1 failed, 3 pending" in out
    assert f"running    {running.key}" in out


def test_job_states_from_squeue_then_sacct(tmp_path, monkeypatch):
    """squeue's state while SLURM holds a job, else sacct's last line (a requeued job has
    several; "CANCELLED by 0" is CANCELLED), else GONE; a failing command is an error."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "squeue").write_text("#!/bin/sh\nprintf '7_1|PENDING\\n9|RUNNING\\n'\n")
    (bin_dir / "sacct").write_text(
        '#!/bin/sh\necho "$@" > ' + str(tmp_path / "sacct_args") + "\n"
        "printf '7_0|FAILED\\n7_0|CANCELLED by 0\\n8|COMPLETED\\n'\n"
    )
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    states = slurm.job_states(["7_0", "7_1", "8", "9", "10"])
    assert states == {
        "7_0": "CANCELLED",
        "7_1": "PENDING",
        "8": "COMPLETED",
        "9": "RUNNING",
        "10": slurm.GONE,
    }
    assert "-j 10,7_0,8 " in (tmp_path / "sacct_args").read_text()  # only those not queued
    (bin_dir / "squeue").write_text("#!/bin/sh\necho 'slurm_load_jobs error' >&2; exit 1\n")
    with pytest.raises(slurm.SlurmError, match="exited 1: slurm_load_jobs error"):
        slurm.job_states(["1"])


# ------------------------------------------------------------- the cluster
def _wait(condition, what, proc=None, timeout=600):
    end = time.time() + timeout
    while not condition():
        if proc is not None:
            assert proc.poll() is None, f"the leaderboard ended before {what}"
        assert time.time() < end, f"timed out waiting for {what}"
        time.sleep(0.2)


# the leaderboard as `python -m` (the same as its console script, without depending on
# the script's #! line)
LEADERBOARD = [sys.executable, "-m", "mla_plugin.leaderboard"]


def _start(args, log):
    return subprocess.Popen(
        [*LEADERBOARD, *args],
        cwd=REPO,
        env=subprocess_env(**THREADS),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _numbers(out):
    csv = pd.read_csv(os.path.join(out, "leaderboard.csv"))
    csv["run_dir"] = [os.path.relpath(d, out) if os.path.isabs(d) else d for d in csv["run_dir"]]
    return csv.sort_values(["variant", "seed", "split", "modality"]).reset_index(drop=True)


def _status(out, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    capsys.readouterr()
    assert cli.main(["--status", *BOARD, "--out", out, "--", *TINY]) == 0
    lines = capsys.readouterr().out.splitlines()
    return {line.split()[1]: line.split(None, 2)[0::2] for line in lines[:-1]}, lines[-1]


@pytest.mark.slurm
@pytest.mark.subprocess
@pytest.mark.slow
def test_leaderboard_on_slurm_cancel_resume_and_same_numbers_as_local(
    slurm_cluster, tmp_path, monkeypatch, capsys
):
    with capsys.disabled():
        print(f"\ncluster started in {slurm_cluster.startup_seconds:.1f} s")
    local = str(tmp_path / "local")
    proc = subprocess.run(
        [*LEADERBOARD, *BOARD, "--jobs", "2", "--out", local, "--", *TINY],
        cwd=REPO,
        env=subprocess_env(**THREADS),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-5000:]

    out = str(tmp_path / "slurm")
    conf = tmp_path / "slurm.yaml"
    conf.write_text("executor: slurm\nslurm:\n  partition: debug\n  poll_seconds: 0.5\n")
    args = ["--config", str(conf), *BOARD, "--out", out]
    concat, mla = "synthetic/concat/eta0/seed1", "synthetic/mla/eta0/seed1"
    job_file = {k: os.path.join(out, "runs", k, slurm.JOB_FILE) for k in (concat, mla)}

    def job_id(key):
        with open(job_file[key]) as f:
            return json.load(f)["job_id"]

    # 1. submitted held (an extra sbatch option) as one array: both cells queued
    log1 = open(tmp_path / "board1.log", "w+")
    board = _start([*args, "--sbatch", "hold", "--", *TINY], log1)
    _wait(lambda: all(os.path.exists(p) for p in job_file.values()), "the submission", board)
    ids = {k: job_id(k) for k in job_file}
    array = ids[concat].split("_")[0]
    assert ids[mla].split("_")[0] == array and ids[concat] != ids[mla]  # one array, two tasks
    script = open(os.path.join(out, "slurm", array, f"{array}_submission.sh")).read()
    for line in ("--partition=debug", "--hold", "--array=0-1%2", "--time=120", "--cpus-per-task=1"):
        assert f"#SBATCH {line}\n" in script
    states, summary = _status(out, monkeypatch, capsys)
    assert states == {
        concat: ["queued", f"SLURM job {ids[concat]}"],
        mla: ["queued", f"SLURM job {ids[mla]}"],
    }
    assert summary == "2 cells: 2 queued"

    # 2. release one and cancel it while it runs (its mmf_run paused, so that it surely
    # is still running): the leaderboard reports it with the job's id and log tail, as
    # does the report
    subprocess.run(["scontrol", "release", ids[concat]], check=True)
    lock = os.path.join(out, "runs", concat, ".lock")

    def mmf_run_pid():
        pid = open(lock).read().strip() if os.path.exists(lock) else ""
        return int(pid) if pid else None

    _wait(mmf_run_pid, "the released job's mmf_run", board)
    os.kill(mmf_run_pid(), signal.SIGSTOP)
    states, _ = _status(out, monkeypatch, capsys)
    assert states[concat] == ["running", f"SLURM job {ids[concat]} RUNNING"]
    subprocess.run(["scancel", ids[concat]], check=True)
    md = os.path.join(out, "leaderboard.md")
    _wait(lambda: os.path.exists(md) and "CANCELLED" in open(md).read(), "the report", board)
    assert f"runs/{concat} (SLURM job {ids[concat]} CANCELLED)" in open(md).read()
    log1.seek(0)
    text = log1.read()
    assert f"FAILED {concat}: SLURM job {ids[concat]} CANCELLED; log " in text
    tail = text.split("FAILED", 1)[1]  # the run.log's tail: the command that was cancelled
    assert "    $ " in tail and f"env.save_dir={os.path.join(out, 'runs', concat)}" in tail
    states, summary = _status(out, monkeypatch, capsys)
    assert states[concat] == ["cancelled", f"SLURM job {ids[concat]}"]
    assert states[mla] == ["queued", f"SLURM job {ids[mla]}"]
    os.kill(board.pid, signal.SIGKILL)  # the leaderboard dies; its held job stays queued
    board.wait()

    # 3. restarted: waits for the queued job (not submitted again), resubmits the cancelled
    log2 = open(tmp_path / "board2.log", "w+")
    board = _start([*args, "--", *TINY], log2)

    def log2_text():
        log2.seek(0)
        return log2.read()

    _wait(lambda: "not submitted again" in log2_text(), "the restarted leaderboard", board)
    assert f"{mla}: SLURM job {ids[mla]} is already PENDING" in log2_text()
    subprocess.run(["scontrol", "release", ids[mla]], check=True)
    assert board.wait(timeout=900) == 0, log2_text()
    assert job_id(mla) == ids[mla] and job_id(concat) != ids[concat]
    for key, runs in ((concat, 2), (mla, 1)):  # the cancelled run, then the rerun
        assert open(os.path.join(out, "runs", key, "run.log")).read().count("\n$ ") == runs
        record = json.load(open(os.path.join(out, "runs", key, "cell.json")))
        assert record["ok"] is True and record["slurm_job_id"] == job_id(key)
    states, summary = _status(out, monkeypatch, capsys)
    assert summary == "2 cells: 2 done"
    assert "CANCELLED" not in open(md).read()

    # 4. the same numbers as the local executor's, cell by cell
    pd.testing.assert_frame_equal(_numbers(out), _numbers(local))
