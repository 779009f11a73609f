"""The modality gap (:mod:`mla_plugin.analysis.gap`): the computation on hand-made
embeddings, and the analysis step on a finished run (``--save-dir DIR`` writes
``DIR/gap.json``, the dict :func:`gap_for_run` returns)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from mla_plugin.analysis.gap import GAP_FILE, modality_gap, normalised_centroid
from tests.support import BIN, QUICK, REPO, SYNTHETIC, subprocess_env


def test_modality_gap_on_hand_made_embeddings():
    a = np.array([[1.0, 0.0], [5.0, 0.0]])  # normalised: both (1, 0)
    b = np.array([[0.0, 2.0], [0.0, 0.5]])  # normalised: both (0, 1)
    assert modality_gap({"a": a, "b": b})["gap"] == pytest.approx(np.sqrt(2))
    assert modality_gap({"a": a, "b": 3 * a})["gap"] == pytest.approx(0.0)  # scale-free
    assert modality_gap({"a": a, "b": -a})["gap"] == pytest.approx(2.0)  # opposite poles
    # centroid of normalised rows, not normalised centroid: (1,0) and (0,1) -> (0.5, 0.5)
    assert normalised_centroid([[2.0, 0.0], [0.0, 7.0]]) == pytest.approx([0.5, 0.5])
    c = np.array([[0.0, -1.0]])
    three = modality_gap({"a": a, "b": b, "c": c})
    assert three["pairs"] == pytest.approx({"a|b": np.sqrt(2), "a|c": np.sqrt(2), "b|c": 2.0})
    assert three["gap"] == pytest.approx((2 * np.sqrt(2) + 2) / 3)
    assert three["n"] == {"a": 2, "b": 2, "c": 1}
    with pytest.raises(ValueError):
        modality_gap({"a": a})


@pytest.mark.subprocess
@pytest.mark.slow
def test_gap_step_writes_gap_json_of_a_finished_run(tmp_path):
    save = str(tmp_path / "run")
    train = [os.path.join(BIN, "mmf_run"), f"config={SYNTHETIC}", "model=concat"]
    train += [*QUICK, "training.max_epochs=1", "training.seed=3", f"env.save_dir={save}"]
    subprocess.run(train, cwd=REPO, env=subprocess_env(), check=True, capture_output=True)
    step = [sys.executable, "-m", "mla_plugin.analysis.gap", "--save-dir", save]
    proc = subprocess.run(step, cwd=REPO, env=subprocess_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    path = os.path.join(save, GAP_FILE)
    with open(path) as f:
        gap = json.load(f)
    assert set(gap) == {"gap", "pairs", "n", "method", "dataset", "split", "seed"}
    assert gap["method"] == "concat" and gap["seed"] == 3 and gap["split"] == "test"
    assert list(gap["pairs"]) == ["strong|weak"] and 0 <= gap["gap"] <= 2
    assert not [n for n in os.listdir(save) if n.startswith(".tmp-")]  # written atomically
    mtime = os.stat(path).st_mtime_ns
    proc = subprocess.run(step, cwd=REPO, env=subprocess_env(), capture_output=True, text=True)
    assert proc.returncode == 0 and os.stat(path).st_mtime_ns == mtime  # kept, not redone
    # a folder without a finished run: a clear error naming it, exit 1
    empty = str(tmp_path / "empty")
    os.makedirs(empty)
    step[-1] = empty
    proc = subprocess.run(step, cwd=REPO, env=subprocess_env(), capture_output=True, text=True)
    assert proc.returncode == 1 and empty in proc.stderr
    assert not os.path.exists(os.path.join(empty, GAP_FILE))
