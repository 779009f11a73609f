"""MMF's own ``mmf_run``/``mmf_predict`` driving the plugin end to end on ``synthetic``."""

import os
import re
import signal
import subprocess
import time

import pandas as pd
import pytest
import torch

from tests.support import BIN, QUICK, REPO, SYNTHETIC, read_metrics, run_cli, subprocess_env

pytestmark = [pytest.mark.subprocess]


def _val_multi_per_epoch(stdout):
    return [float(v) for v in re.findall(r"epoch \d+ val multi ([0-9.]+)", stdout)]


@pytest.mark.parametrize("model", ["concat", "mla_late_fusion"])
def test_config_only_run_selects_on_validation(model, save_dir):
    proc = run_cli(
        "mmf_run", [f"config={SYNTHETIC}", f"model={model}", f"env.save_dir={save_dir}", *QUICK]
    )
    m = read_metrics(save_dir)
    assert m["method"] == model and m["dataset"] == "synthetic" and m["seed"] == 1
    assert m["selection"] == "val" and m["modalities"] == ["strong", "weak"]
    for split in ("val", "test"):
        assert set(m[split]) == {"multi", "strong", "weak"}
        assert all(0.0 <= v <= 1.0 for v in m[split].values())
    per_epoch = _val_multi_per_epoch(proc.stdout)
    assert len(per_epoch) == 3
    assert m["val"]["multi"] == pytest.approx(max(per_epoch), abs=1e-4)
    assert m["selected_epoch"] == per_epoch.index(max(per_epoch)) + 1
    assert os.path.exists(os.path.join(save_dir, "best.ckpt"))


def test_command_line_overrides_win(save_dir):
    run_cli(
        "mmf_run",
        [
            f"config={SYNTHETIC}",
            "model=mla_late_fusion",
            "dataset=synthetic",
            "training.seed=7",
            "protocol.selection=last",
            f"env.save_dir={save_dir}",
            *QUICK,
        ],
    )
    m = read_metrics(save_dir)
    assert (m["method"], m["seed"], m["selection"]) == ("mla_late_fusion", 7, "last")
    assert m["selected_epoch"] == 3


@pytest.mark.slow
def test_seed_makes_runs_repeatable(tmp_path):
    runs = []
    for i in range(2):
        d = str(tmp_path / f"r{i}")
        run_cli("mmf_run", [f"config={SYNTHETIC}", "model=concat", f"env.save_dir={d}", *QUICK])
        runs.append(read_metrics(d))
    assert runs[0] == runs[1]


@pytest.mark.slow
def test_mmf_predict_on_the_selected_checkpoint(save_dir, tmp_path):
    run_cli("mmf_run", [f"config={SYNTHETIC}", "model=concat", f"env.save_dir={save_dir}", *QUICK])
    out = str(tmp_path / "predict")
    run_cli(
        "mmf_predict",
        [
            f"config={SYNTHETIC}",
            "model=concat",
            "run_type=test",
            f"checkpoint.resume_file={save_dir}/best.ckpt",
            f"env.save_dir={out}",
            *QUICK,
        ],
    )
    table = pd.read_csv(os.path.join(out, "predictions_synthetic_test.csv"))
    assert len(table) == 256
    assert set(table.columns) >= {
        "index",
        "target",
        "prediction",
        "prediction_strong",
        "prediction_weak",
    }
    accuracy = (table.prediction == table.target).mean()
    assert accuracy == pytest.approx(read_metrics(save_dir)["test"]["multi"], abs=1e-6)


def _kill_mid_epoch(args, save_dir, timeout=120):
    """Start ``mmf_run``, SIGKILL it once a mid-epoch checkpoint exists; return that
    checkpoint's position."""
    proc = subprocess.Popen(
        [os.path.join(BIN, "mmf_run"), *args],
        cwd=REPO,
        env=subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ckpt = os.path.join(save_dir, "current.ckpt")
    deadline = time.time() + timeout
    try:
        while time.time() < deadline and proc.poll() is None:
            if os.path.exists(ckpt):
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.01)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    counts = torch.load(ckpt, weights_only=False)["counts"]
    return counts


@pytest.mark.slow
@pytest.mark.parametrize("model", ["mla", "qmf"])
def test_killed_run_resumes_to_the_same_metrics(model, tmp_path):
    args = [
        f"config={SYNTHETIC}",
        f"model={model}",
        "training.checkpoint_interval=4",
        "dataset_config.synthetic.sizes.train=4096",
        "dataset_config.synthetic.sizes.val=256",
        "dataset_config.synthetic.sizes.test=256",
        "training.max_epochs=3",
    ]
    straight = str(tmp_path / "straight")
    run_cli("mmf_run", args + [f"env.save_dir={straight}"])
    killed = str(tmp_path / "killed")
    counts = _kill_mid_epoch(args + [f"env.save_dir={killed}"], killed)
    assert counts["batch_in_epoch"] > 0, counts  # killed in the middle of an epoch
    # what a kill in the middle of a checkpoint write leaves beside the intact checkpoint
    torn = os.path.join(killed, ".tmp-k2x9current.ckpt")
    with open(torn, "wb") as f:
        f.write(b"PK\x03\x04 half a checkpoint")
    proc = run_cli("mmf_run", args + [f"env.save_dir={killed}", "checkpoint.resume=True"])
    assert f"removed {torn}, left by a run killed while writing" in proc.stdout + proc.stderr
    assert not os.path.exists(torn)
    a, b = read_metrics(straight), read_metrics(killed)
    assert a == b
    sa = torch.load(os.path.join(straight, f"{model}_final.pth"))
    sb = torch.load(os.path.join(killed, f"{model}_final.pth"))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
