"""The baselines as MMF models, end to end through ``mmf_run`` on ``synthetic``: the
``metrics.json`` it writes (strict JSON, every key; the unimodal model's fused prediction is
its one modality's); FiLM, BiGated and OGM-GE on three modalities with missing ones; QMF's
history and OGM-GE's coefficients read back from the hook state saved in the checkpoint.
That each baseline learns is tests/models/test_learns.py's contract, not checked here: these
runs are too small to learn.

All runs are launched once (two at a time) by a module fixture; tiny settings keep the file
well under a minute and a half on two cores.
"""

import json
import math
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from tests.support import BIN, REPO, SYNTHETIC, subprocess_env, three_modality_yaml

pytestmark = [pytest.mark.subprocess, pytest.mark.slow]

MMF_RUN = os.path.join(BIN, "mmf_run")

# the runs the checks below read (learning: test_learns.py, every method in-process)
MMF_RUNS = ["ogm_ge", "qmf", "unimodal"]
THREE_MODALITY = ["film", "bigated", "ogm_ge"]
TRAIN, VAL, TEST, BATCH, EPOCHS = 192, 96, 96, 64, 2
TINY = [
    f"dataset_config.synthetic.sizes.train={TRAIN}",
    f"dataset_config.synthetic.sizes.val={VAL}",
    f"dataset_config.synthetic.sizes.test={TEST}",
    f"training.max_epochs={EPOCHS}",
    f"training.batch_size={BATCH}",
]
QMF_MISSING_RATE = 0.5

THREE_YAML = three_modality_yaml()


def _mmf_run(config, model, save_dir, extra=()):
    cmd = (
        [MMF_RUN, f"config={config}", f"model={model}", f"env.save_dir={save_dir}"]
        + TINY
        + list(extra)
    )
    # two runs at a time: one thread each
    proc = subprocess.run(
        cmd,
        cwd=REPO,
        env=subprocess_env(OMP_NUM_THREADS="1"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    return {"proc": proc, "save_dir": save_dir, "cmd": " ".join(cmd)}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("baselines")
    three = root / "synthetic_three.yaml"
    three.write_text(THREE_YAML)
    jobs = {m: (SYNTHETIC, m, str(root / m), ()) for m in MMF_RUNS}
    for m in THREE_MODALITY:
        extra = ["model_config.ogm_ge.ogm_end_epoch=0"] if m == "ogm_ge" else []
        jobs[f"{m}_3"] = (str(three), m, str(root / f"{m}_3"), extra)
    jobs["qmf_missing"] = (
        SYNTHETIC,
        "qmf",
        str(root / "qmf_missing"),
        [f"dataset_config.synthetic.missing_rate={QMF_MISSING_RATE}"],
    )
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(_mmf_run, *job) for name, job in jobs.items()}
        return {name: f.result() for name, f in futures.items()}


def _succeeded(run):
    proc = run["proc"]
    assert proc.returncode == 0, (
        f"{run['cmd']} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    )
    return run


def _strict_json(path):
    def reject(constant):
        raise ValueError(f"{path}: {constant} is not valid JSON")

    with open(path) as f:
        return json.loads(f.read(), parse_constant=reject)


def _hook_state(run, name):
    state = torch.load(
        os.path.join(run["save_dir"], "current.ckpt"), map_location="cpu", weights_only=False
    )
    assert list(state["hooks"]) == [name]
    return state["hooks"][name]


def _check_metrics(run, method, modalities, unreported=()):
    metrics = _strict_json(os.path.join(_succeeded(run)["save_dir"], "metrics.json"))
    for key in ("method", "dataset", "seed", "selected_update", "val", "test"):
        assert key in metrics, key
    assert metrics["method"] == method and metrics["dataset"] == "synthetic"
    assert metrics["seed"] == 1 and metrics["modalities"] == modalities
    assert 0 < metrics["selected_update"] <= EPOCHS * math.ceil(TRAIN / BATCH)
    for split in ("val", "test"):
        assert set(metrics[split]) == {"multi", *modalities}
        for key, value in metrics[split].items():
            if key in unreported:
                assert value is None, (split, key)
            else:
                assert isinstance(value, float) and 0.0 <= value <= 1.0, (split, key, value)
    return metrics


@pytest.mark.parametrize("method", MMF_RUNS)
def test_mmf_run_writes_strict_metrics(runs, method):
    unreported = ("weak",) if method == "unimodal" else ()
    metrics = _check_metrics(runs[method], method, ["strong", "weak"], unreported)
    if method == "unimodal":  # the fused prediction is the one modality's
        assert metrics["test"]["multi"] == metrics["test"]["strong"]


@pytest.mark.parametrize("method", THREE_MODALITY)
def test_three_modalities_with_missing(runs, method):
    _check_metrics(runs[f"{method}_3"], method, ["a", "b", "c"])


def _expected_steps_per_epoch():
    return math.ceil(TRAIN / BATCH)


def test_ogm_ge_modulates_through_the_trainer(runs):
    log = _hook_state(_succeeded(runs["ogm_ge"]), "ogm_ge")["coefficient_summary"]
    assert [e["epoch"] for e in log] == list(range(1, EPOCHS + 1))  # window 0-50 covers both
    for entry in log:
        assert entry["steps"] == _expected_steps_per_epoch()
        assert set(entry["mean_k"]) == {"strong", "weak"}
        assert all(0.0 < k <= 1.0 for k in entry["mean_k"].values())
        # two modalities: exactly one is suppressed at every step (unless the scores tie)
        assert sum(entry["suppressed"].values()) == entry["steps"]
    assert any(k < 1.0 for e in log for k in e["mean_k"].values())


def test_ogm_ge_three_modalities_window(runs):
    log = _hook_state(_succeeded(runs["ogm_ge_3"]), "ogm_ge")["coefficient_summary"]
    assert [e["epoch"] for e in log] == [1]  # ogm_end_epoch=0: only the first epoch
    assert set(log[0]["mean_k"]) == {"a", "b", "c"}
    # others_sum: at most one modality suppressed per step
    assert sum(log[0]["suppressed"].values()) <= log[0]["steps"]


def _train_mask(missing_rate):
    from mla_plugin.data.synthetic import SyntheticDataset

    data = SyntheticDataset(
        "train",
        modalities=["strong", "weak"],
        signal=[3.0, 1.0],
        dim=32,
        num_classes=10,
        sizes={"train": TRAIN, "val": VAL, "test": TEST},
        seed=0,
        missing_rate=missing_rate,
        mask_scheme="cpm_atleast1",
    )
    return data.mask


def test_qmf_history_complete_data(runs):
    history = _hook_state(_succeeded(runs["qmf"]), "qmf")["history"]
    assert history["size"] == TRAIN
    for buf in history["buffers"].values():
        assert buf.shape == (TRAIN,) and bool((buf > 0).all())  # every sample visited


def test_qmf_history_only_at_visited_indices(runs):
    history = _hook_state(_succeeded(runs["qmf_missing"]), "qmf")["history"]
    mask = _train_mask(QMF_MISSING_RATE)
    assert history["size"] == TRAIN
    assert 0 < int(mask[:, 0].sum()) < TRAIN and 0 < int(mask[:, 1].sum()) < TRAIN
    for j, m in enumerate(["strong", "weak"]):
        buf = history["buffers"][m]
        # a modality's accumulated loss is recorded exactly where the sample has it
        assert torch.equal(buf > 0, mask[:, j]), m
        assert bool((buf[~mask[:, j]] == 0).all())
