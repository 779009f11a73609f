"""A finished or started run is never overwritten: a new run into its save_dir is refused
before anything is written, and checkpoint.overwrite=True moves the old run aside
(mla_plugin/trainers/resume_checks.py::check_fresh); a refused run leaves no log file
behind (run_folder.release_log_files)."""

import glob
import os
import re
import signal
import subprocess
import sys

import pytest

from mla_plugin.trainers.records import RunRecordError
from tests.support import make_trainer, read_metrics

TINY = [
    "dataset_config.synthetic.sizes.train=64",
    "dataset_config.synthetic.sizes.val=32",
    "dataset_config.synthetic.sizes.test=32",
    "dataset_config.synthetic.num_classes=4",
    "training.batch_size=16",
    "training.max_epochs=1",
]


def _snapshot(folder):
    """{relative path: bytes} of every file under ``folder`` (the lock aside)."""
    out = {}
    for path in glob.glob(os.path.join(folder, "**"), recursive=True):
        if os.path.isfile(path) and not path.endswith(".lock"):
            with open(path, "rb") as f:
                out[os.path.relpath(path, folder)] = f.read()
    return out


def test_a_finished_run_is_refused_then_moved_aside_on_request(tmp_path):
    run = str(tmp_path / "run")
    make_trainer(run, *TINY).train()
    before = _snapshot(run)
    assert {"metrics.json", "best.ckpt", "current.ckpt", "mla_final.pth"} <= set(before)
    with pytest.raises(RunRecordError) as e:
        make_trainer(run, *TINY, "optimizer.params.lr=0.1")  # a fresh run, no resume
    message = str(e.value)
    assert message.startswith(f"env.save_dir {run} already holds a finished run (")
    for way in ("checkpoint.resume=True", "another env.save_dir", "checkpoint.overwrite=True"):
        assert way in message, message
    # nothing written: every file as it was, not even a new (empty) log file
    assert _snapshot(run) == before
    # the opt-in moves the old run aside, whole, and the new run starts in an empty folder
    fresh = make_trainer(run, *TINY, "optimizer.params.lr=0.1", "checkpoint.overwrite=True")
    (aside,) = glob.glob(f"{run}.replaced-*")
    assert re.fullmatch(r".*/run\.replaced-\d{8}-\d{6}", aside)
    assert _snapshot(aside) == before
    assert fresh.ctx.epoch == 0 and not os.path.exists(os.path.join(run, "best.ckpt"))
    fresh.train()
    assert read_metrics(run)["seed"] == read_metrics(aside)["seed"]
    assert "Training mla on synthetic" in open(os.path.join(run, "train.log")).read()
    # a resume of the new run is not a fresh run: allowed
    assert make_trainer(run, *TINY, "optimizer.params.lr=0.1", "checkpoint.resume=True")


def test_a_started_run_is_refused_too(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "current.ckpt").write_bytes(b"a checkpoint")
    with pytest.raises(RunRecordError, match=r"already holds a started run \(current.ckpt\)"):
        make_trainer(str(run), *TINY)
    assert sorted(os.listdir(run)) == [".lock", "current.ckpt"]
    # a folder with only logs and the config of a run stopped at load is no run: nothing
    # there would be lost, so a new run goes ahead (a typo fixed, the same command again)
    other = str(tmp_path / "other")
    with pytest.raises(ValueError, match="no training hook named 'nope'"):
        make_trainer(other, *TINY, "training.hooks=['nope']")
    assert os.path.isfile(os.path.join(other, "config.yaml"))
    assert make_trainer(other, *TINY).ctx.save_dir == other


def test_a_run_refused_by_the_lock_leaves_no_log_file(tmp_path):
    run = str(tmp_path / "run")
    os.makedirs(run)
    lock = os.path.join(run, ".lock")
    holder = subprocess.Popen(  # another writer, holding the lock as a run does
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys\n"
            f"fd = os.open({lock!r}, os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "print('locked', flush=True)\n"
            "sys.stdin.read()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunRecordError, match="is in use"):
            make_trainer(run, *TINY)
        assert sorted(os.listdir(run)) == [".lock"]  # before: an empty logs/train_<time>.log
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()


def test_a_resume_file_that_is_no_checkpoint_names_the_path(tmp_path):
    not_ckpt = tmp_path / "notes.txt"
    not_ckpt.write_text("not a checkpoint\n")
    with pytest.raises(ValueError) as e:
        make_trainer(str(tmp_path / "run"), *TINY, f"checkpoint.resume_file={not_ckpt}")
    assert str(e.value).startswith(f"{not_ckpt} is not a checkpoint that can be read (")
    assert str(e.value).endswith(
        "give a current.ckpt, best.ckpt or <model>_final.pth written by a run"
    )


def test_a_long_reason_is_cut_after_a_whole_sentence():
    from mla_plugin.trainers.resume_checks import reason

    long = "First sentence here. " + "word " * 80 + "end.\nsecond line"
    assert reason(RuntimeError(long)) == "RuntimeError: First sentence here. ..."
    assert reason(OSError("short")) == "OSError: short"
    assert reason(ValueError("one line\nmore")) == "ValueError: one line ..."
