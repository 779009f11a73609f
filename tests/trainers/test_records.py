"""Runs as records (a run folder per run, a lock on the save_dir, config.yaml and the
variant) and the checks a resume makes (mla_plugin/trainers/records.py)."""

import fcntl
import glob
import os
import re
import shutil
import signal
import subprocess
import sys

import pytest
import yaml

from mla_plugin.trainers import records
from mla_plugin.trainers.records import RunRecordError
from mla_plugin.utils import locks
from tests.support import REPO, SYNTHETIC, make_trainer, read_metrics

TINY = [
    "dataset_config.synthetic.sizes.train=128",
    "dataset_config.synthetic.sizes.val=64",
    "dataset_config.synthetic.sizes.test=64",
    "training.max_epochs=1",
]


def _default(*opts):
    """A trainer without env.save_dir (config given by absolute path: the cwd is tmp)."""
    user_dir = f"env.user_dir={os.path.join(REPO, 'projects', 'mla')}"
    return make_trainer(None, *TINY, user_dir, *opts, config=os.path.join(REPO, SYNTHETIC))


def test_default_save_dir_is_a_new_run_folder_with_its_config_and_variant(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MMF_SAVE_DIR", raising=False)
    first = _default("model_config.mla.hgm=off")
    root = tmp_path / "save" / "synthetic" / "mla"
    assert os.path.dirname(first.ctx.save_dir) == str(root)
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{8}", os.path.basename(first.ctx.save_dir))
    first.train()
    # MMF's Logger, built before the trainer on ./save, now writes into the run folder
    assert "Training mla on synthetic" in open(os.path.join(first.ctx.save_dir, "train.log")).read()
    assert len(glob.glob(os.path.join(first.ctx.save_dir, "logs", "train_*.log"))) == 1
    assert not os.path.exists(tmp_path / "save" / "train.log")
    metrics = read_metrics(first.ctx.save_dir)
    assert metrics["variant"] == {"hgm": "off"} and metrics["label"] == "mla[hgm=off]"
    with open(os.path.join(first.ctx.save_dir, "config.yaml")) as f:
        saved = yaml.safe_load(f)
    assert saved["model_config"]["mla"]["hgm"] == "off"
    assert saved["env"]["save_dir"] == first.ctx.save_dir
    with open(os.path.join(first.ctx.save_dir, "overrides.yaml")) as f:
        assert "model_config.mla.hgm=off" in yaml.safe_load(f)
    # the same config again: a second folder, same hash; nothing of the first is touched
    second = _default("model_config.mla.hgm=off")
    assert second.ctx.save_dir != first.ctx.save_dir
    assert second.ctx.save_dir[-8:] == first.ctx.save_dir[-8:]
    # resume: the newest folder of this config that holds a checkpoint (the first)
    resumed = _default("model_config.mla.hgm=off", "checkpoint.resume=True")
    assert resumed.ctx.save_dir == first.ctx.save_dir and resumed.ctx.epoch == 1
    # another config (lr): another hash, so a resume of it starts a new folder
    other = _default(
        "model_config.mla.hgm=off", "checkpoint.resume=True", "optimizer.params.lr=0.1"
    )
    assert other.ctx.save_dir[-8:] != first.ctx.save_dir[-8:] and other.ctx.epoch == 0
    # an explicit env.save_dir is used as is
    explicit = str(tmp_path / "mine")
    monkeypatch.chdir(REPO)
    assert make_trainer(explicit, *TINY).ctx.save_dir == explicit


def test_resume_refuses_changed_config_missing_and_corrupt_checkpoints(tmp_path):
    run = str(tmp_path / "run")
    make_trainer(run, *TINY).train()
    resume = [*TINY, "checkpoint.resume=True"]
    # keys that do not affect results may change
    ok = make_trainer(run, *resume, "training.log_interval=7", "training.num_workers=0")
    assert ok.ctx.epoch == 1
    with pytest.raises(RunRecordError) as e:
        make_trainer(
            run,
            *resume,
            "optimizer.params.lr=0.1",
            "training.seed=7",
            "model_config.mla.hgm=off",
            "dataset_config.synthetic.sizes.train=96",
        )
    message = str(e.value)
    for line in (
        "optimizer.params.lr: 0.05 -> 0.1",
        "training.seed: 1 -> 7",
        "model_config.mla.hgm: 'owm' -> 'off'",
        "dataset_config.synthetic.sizes.train: 128 -> 96",
    ):
        assert line in message, message
    assert "log_interval" not in message and run in message
    # a truncated best.ckpt is named at start (not at the final evaluation)
    best = os.path.join(run, "best.ckpt")
    shutil.copy(best, best + ".good")
    with open(best, "r+b") as f:
        f.truncate(os.path.getsize(best) // 2)
    with pytest.raises(RunRecordError, match=re.escape(f"checkpoint {best} is truncated")):
        make_trainer(run, *resume)
    # a corrupt current.ckpt too, with how to recover
    os.replace(best + ".good", best)
    current = os.path.join(run, "current.ckpt")
    shutil.copy(current, current + ".good")
    with open(current, "r+b") as f:
        f.truncate(100)
    with pytest.raises(RunRecordError, match="checkpoint.resume_best=True"):
        make_trainer(run, *resume)
    # best.ckpt without current.ckpt: refused, never silently overwritten
    os.unlink(current)
    with pytest.raises(RunRecordError, match="holds best.ckpt but no current.ckpt"):
        make_trainer(run, *resume)
    # ... the opt-in it names resumes the selected weights
    assert make_trainer(run, *resume, "checkpoint.resume_best=True").ctx.epoch == 1


def test_second_writer_is_refused_and_a_dead_holder_does_not_block(tmp_path):
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
            "os.pwrite(fd, str(os.getpid()).encode(), 0)\n"
            "print('locked', flush=True)\n"
            "sys.stdin.read()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunRecordError) as e:
            make_trainer(run, *TINY)
        assert f"env.save_dir {run} is in use: process {holder.pid} holds {lock}" in str(e.value)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert make_trainer(run, *TINY).ctx.save_dir == run  # the kernel released the dead one's lock
    with open(lock) as f:
        assert f.read() == str(os.getpid())


def test_a_lock_held_through_an_inherited_descriptor_is_used(tmp_path, monkeypatch):
    """The leaderboard locks a cell's .lock and its mmf_run inherits the descriptor, named
    by MLA_RUN_LOCK_FD: the run must use that lock, not refuse it; without the variable
    the same lock is someone else's (simulated in-process: this process holds the lock
    through another open file of the same .lock)."""
    run = str(tmp_path / "cell")
    os.makedirs(run)
    fd = os.open(os.path.join(run, ".lock"), os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    locks.write_holder(fd, 4242)
    try:
        with pytest.raises(RunRecordError, match=r"in use: process 4242 holds .*wait for"):
            records.lock_save_dir(run)
        monkeypatch.setenv(locks.LOCK_FD_ENV, str(fd))
        assert records.lock_save_dir(run) == fd
    finally:
        locks._HELD.pop(os.path.realpath(os.path.join(run, ".lock")), None)
        os.close(fd)


def test_may_change_allow_list():
    assert records.may_change("checkpoint.resume")
    assert records.may_change("training.log_interval")
    assert records.may_change("model_config.qmf.num_train_samples")
    for key in ("training.seed", "optimizer.params.lr", "env.data_dir", "training.batch_size"):
        assert not records.may_change(key), key
