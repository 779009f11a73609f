"""Table 1's reference columns in the reports (:mod:`mla_plugin.leaderboard.reports.probes`):
the unimodal model per modality, the flags the probe raises, and the reference cells run by
a leaderboard (the probe's fit: tests/analysis/test_probe.py)."""

import json
import os

import numpy as np
import pytest

from mla_plugin.leaderboard import reports
from mla_plugin.leaderboard.reports import probes
from tests.support import run_cli


def _run(method, variant, multi, audio=None, image=None, chance=0.2, seed=1, ds="d"):
    test = {"multi": multi, "audio": audio, "image": image}
    return {
        "dataset": ds,
        "method": method,
        "variant": variant,
        "seed": seed,
        "missing_rate": 0.0,
        "train_mask": None,
        "selection": "val",
        "selected_epoch": 1,
        "modalities": ["audio", "image"],
        "val": dict(test),
        "test": test,
        "majority": {"test": {"rate": {"multi": chance, "audio": chance, "image": chance}}},
        "run_dir": f"/x/{variant}/{seed}",
    }


def test_flags_and_the_unimodal_reference_column():
    runs = [
        _run("concat", "concat", 0.21, 0.5, 0.3),  # at the majority rate (0.2)
        _run("film", "film", 0.70, 0.5, 0.3),  # 19 points under the probe
        _run("mla", "mla", 0.85, 0.6, 0.5),  # fine
        _run("probe", "probe", 0.89, 0.7, 0.6),
        _run("unimodal", "unimodal[modality=audio]", 0.65, 0.65, None),
        _run("unimodal", "unimodal[modality=image]", 0.55, None, 0.55),
    ]
    gaps = {g["method"]: g for g in probes.probe_gaps(runs)}
    assert set(gaps) == {"concat", "film", "mla"}  # the references are not judged
    assert gaps["concat"]["flags"] == [
        "within 2 points of the majority class",
        "more than 10 points under the concatenated probe",
    ]
    assert gaps["film"]["flags"] == ["more than 10 points under the concatenated probe"]
    assert gaps["mla"]["flags"] == [] and gaps["mla"]["minus_probe"] == pytest.approx(-4.0)
    lines = probes.flags(runs)
    assert len(lines) == 3 and "FiLM fused 70.00 % is more than 10 points" in lines[2]

    t1 = reports.table1(runs)
    md = reports.to_markdown(t1)
    assert list(t1.means.columns) == ["Concat", "FiLM", "MLA", "Unimodal", "LR probe"]
    uni = t1.means["Unimodal"].round(6).tolist()
    assert uni[:2] == [65.0, 55.0] and np.isnan(uni[2])  # each row from its own run
    assert t1.means["LR probe"].round(6).tolist() == [70.0, 60.0, 89.0]
    # the references are never ranked: MLA is best in every row though the probe is higher
    assert (t1.marks["MLA"] == "best").all() and (t1.marks["LR probe"] == "").all()
    assert "| d | Multi | 21.00 | " in md  # 1 point above chance: not marked †, but flagged

    check = probes.probe_table(runs)
    assert check.means.loc["d"].round(2).tolist() == [-68.0, -19.0, -4.0]
    assert "FiLM fused 70.00 %" in check.note


@pytest.mark.subprocess
def test_leaderboard_runs_the_references_as_cells(tmp_path):
    out = str(tmp_path / "board")
    args = ["--datasets", "synthetic", "--methods", "concat", "--seeds", "1", "--jobs", "2"]
    args += ["--references", "probe", "unimodal", "--gap-methods", "none", "--no-progress"]
    args += ["--out", out, "--", "training.max_epochs=1"]
    args += [f"dataset_config.synthetic.sizes.{s}=128" for s in ("train", "val", "test")]
    run_cli("mla-leaderboard", args, timeout=600)
    runs = sorted(os.listdir(os.path.join(out, "runs", "synthetic")))
    # synthetic.yaml lists its modalities (strong, weak): one unimodal run each
    assert runs == ["concat", "probe", "unimodal[modality-strong]", "unimodal[modality-weak]"]
    with open(os.path.join(out, "runs/synthetic/probe/eta0/seed1/metrics.json")) as f:
        metrics = json.load(f)
    assert set(metrics["probe"]["C"]) == {"strong", "weak", "multi"}
    assert 0.0 <= metrics["test"]["multi"] <= 1.0 and metrics["method"] == "probe"
    md = open(os.path.join(out, "leaderboard.md")).read()
    assert "| Concat | Unimodal | LR probe |" in md
    assert "Reference check: fused accuracy against the concatenated linear probe" in md
