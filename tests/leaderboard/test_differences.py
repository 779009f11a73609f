"""The reports' "which differences are real" on hand-made runs: Table 1's tie marks from the
paired tests, the pairwise table, "no paired test" for runs without predictions, the seeds
line, the across-dataset ranks and Friedman's test (or the sentence that they need two
datasets), and the critical-difference diagram opened in headless Chromium."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from mla_plugin.leaderboard import reports
from mla_plugin.leaderboard.reports import pairs
from mla_plugin.utils.io import PREDICTIONS_FILE
from tests.leaderboard.test_leaderboard import _check_page, chromium  # noqa: F401
from tests.support import subprocess_env

N = 100  # test samples; label = index % 10, so the majority-class rate is 10 %


def _run(out, dataset, method, seed, correct, predictions=True):
    """A finished run folder whose fused and per-modality predictions are right exactly on
    the sample indexes in ``correct``."""
    save = os.path.join(out, "runs", dataset, method, "eta0", f"seed{seed}")
    os.makedirs(save)
    index = np.arange(N)
    label = index % 10
    hit = np.isin(index, list(correct))
    prediction = np.where(hit, label, (label + 1) % 10)
    acc = float(hit.mean())
    metrics = {
        "method": method,
        "dataset": dataset,
        "seed": seed,
        "selection": "val",
        "selected_epoch": 1,
        "modalities": ["strong", "weak"],
        "val": {"multi": acc, "strong": acc, "weak": acc},
        "test": {"multi": acc, "strong": acc, "weak": acc},
        "majority": {
            s: {"class": 0, "samples": N, "rate": dict.fromkeys(["multi", "strong", "weak"], 0.1)}
            for s in ("val", "test")
        },
    }
    with open(os.path.join(save, "metrics.json"), "w") as f:
        json.dump(metrics, f)
    if predictions:
        arrays = {"index": index, "label": label, "prediction": prediction}
        for m in ("strong", "weak"):
            arrays[f"prediction_{m}"] = prediction
            arrays[f"present_{m}"] = np.ones(N, bool)
        np.savez_compressed(os.path.join(save, PREDICTIONS_FILE), **arrays)


# synthetic: MLA right on 0-89 (90 %), QMF on 0-87 and 95 (89 %), Concat on 0-59 (60 %);
# Sum's runs are older than the predictions file
FIRST = {"mla": range(90), "qmf": [*range(88), 95], "concat": range(60), "sum": range(50)}
# a second dataset in the same order: MLA 85, QMF 80, Concat 70 %
SECOND = {"mla": range(85), "qmf": range(80), "concat": range(70)}


@pytest.fixture(scope="module")
def boards(tmp_path_factory):
    one = str(tmp_path_factory.mktemp("one"))
    two = str(tmp_path_factory.mktemp("two"))
    for out in (one, two):
        for method, correct in FIRST.items():
            for seed in (1, 2, 3):
                _run(out, "synthetic", method, seed, correct, predictions=method != "sum")
    for method, correct in SECOND.items():
        for seed in (1, 2, 3):
            _run(two, "second", method, seed, correct)
    return {"one": one, "two": two}


def test_pairs_pool_the_seeds_and_tie_marks_follow_holm(boards):
    built = reports.build(boards["one"])
    found = built["differences"].pairs
    multi = found[(found["dataset"] == "synthetic") & (found["row"] == "multi")]
    row = multi[(multi["a"] == "qmf") & (multi["b"] == "mla")].iloc[0]
    # per seed MLA alone is right on 88 and 89, QMF alone on 95: pooled b = 3, c = 6,
    # exact McNemar p = 2 * P(X <= 3 | n = 9) = 2 * (1 + 9 + 36 + 84) / 2**9
    assert (row.seeds, row.pairs, row.a_only, row.b_only) == (3, 300, 3, 6)
    assert row.difference == pytest.approx(-1.0) and row.ci_low <= -1.0 <= row.ci_high
    assert row.p == pytest.approx(260 / 512)
    # Holm over the row's three tested pairs: this p is the largest, so it stays
    assert row.p_holm == pytest.approx(260 / 512)
    # Sum kept no predictions: its pairs are untested and it is listed as such
    assert multi[(multi["a"] == "sum") | (multi["b"] == "sum")]["p"].isna().all()
    assert pairs.untested(found, "synthetic") == ["sum"]

    t1 = built["table1"]
    assert list(t1.means.columns) == ["Sum", "Concat", "QMF", "MLA"]
    marks = t1.marks.loc[("synthetic", "Multi")].tolist()
    assert marks == ["", "", "second", "best"]
    assert t1.suffix.loc[("synthetic", "Multi")].tolist() == ["", "", pairs.TIE_MARK, ""]
    md = open(os.path.join(boards["one"], "leaderboard.md")).read()
    assert f"<ins>89.00 ± 0.00 {pairs.TIE_MARK}</ins> | **90.00 ± 0.00** |" in md
    assert "No paired test (runs without test predictions): Sum." in md
    assert "| synthetic | Sum | (any) | no paired test |" in md
    assert "| synthetic | QMF | MLA | 3 | 300 | -1.00 | " in md
    # Concat is separated from MLA (p ~ 1e-27): starred, not tied
    assert "| synthetic | Concat | MLA | 3 | 300 | -30.00 * |" in md
    # one seed std of 0 on every method: every gap to the best exceeds it
    assert "Every other method trails the best (MLA) by more than a seed std" in md
    # one dataset: the across-dataset comparison says what it needs
    assert "needs two or more datasets; this leaderboard has 1" in md
    csv = pd.read_csv(os.path.join(boards["one"], "pairwise.csv"))
    assert list(csv.columns) == pairs.COLUMNS and len(csv) == 3 * 6  # 3 rows × 6 pairs
    page = open(os.path.join(boards["one"], "index.html")).read()
    assert "Which differences are real" in page and 'data-plot="pairwise-synthetic"' in page
    assert 'data-plot="cd"' not in page


def test_across_datasets_ranks_friedman_and_the_cd_diagram(boards):
    built = reports.build(boards["two"])
    across = built["differences"].across
    # MLA > QMF > Concat on both datasets: ranks 1, 2, 3; Sum ran on one dataset only
    assert across["ranks"].to_dict() == {"MLA": 1.0, "QMF": 2.0, "Concat": 3.0}
    assert across["dropped"] == ["Sum"]
    # chi2_F = 12 N / (k (k + 1)) * (sum R^2 - k (k + 1)^2 / 4) = 2 * (14 - 12), 2 df
    statistic, p = across["friedman"]
    assert statistic == pytest.approx(4.0) and p == pytest.approx(math.exp(-2))
    assert across["cd"] == pytest.approx(2.343 * math.sqrt(3 * 4 / (6 * 2)), abs=1e-3)
    md = open(os.path.join(boards["two"], "leaderboard.md")).read()
    assert "### Average rank across datasets" in md and "does not reject" in md
    page = open(os.path.join(boards["two"], "index.html")).read()
    assert 'data-plot="cd"' in page and "Critical-difference diagram" in page


@pytest.mark.browser
@pytest.mark.subprocess
def test_cd_diagram_in_headless_chromium(chromium, boards):  # noqa: F811
    reports.build(boards["two"])
    # bar chart, 2 laziness charts, 2 pairwise heat maps, the CD diagram
    dom = _check_page(chromium, os.path.join(boards["two"], "index.html"), min_plots=6)
    assert 'data-plot="cd"' in dom and "Average rank across datasets" in dom
    assert 'data-plot="pairwise-second"' in dom


def test_runs_that_scored_different_test_sets_are_refused_naming_the_files(tmp_path):
    out = str(tmp_path)
    _run(out, "synthetic", "concat", 1, range(60))
    _run(out, "synthetic", "mla", 1, range(90))
    path = os.path.join(out, "runs/synthetic/mla/eta0/seed1", PREDICTIONS_FILE)
    with np.load(path) as f:
        arrays = dict(f)
    arrays["label"][7] = 3  # index 7 has label 7 in the other run
    np.savez_compressed(path, **arrays)
    with pytest.raises(
        ValueError,
        match=r"mla/eta0/seed1/test_predictions.npz: the test labels "
        r"differ at index 7",
    ):
        pairs.paired_tests(reports.load_runs(out))


REFUSE_TORCH = """
import importlib.abc, sys
HEAVY = {"torch", "mmf", "mmf_cli", "mla_bridge"}
for name in [m for m in sys.modules if m.split(".")[0] in HEAVY]:
    del sys.modules[name]  # the .pth's start-up import of the bridge
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in HEAVY:
            raise ImportError("the reports imported " + name)
sys.meta_path.insert(0, Refuse())
from mla_plugin.leaderboard import reports
built = reports.build(sys.argv[1])
print(built["differences"].cd_png is not None, built["differences"].pairs["p"].notna().sum())
"""


@pytest.mark.subprocess
def test_the_statistics_need_neither_torch_nor_mmf(boards):
    proc = subprocess.run(
        [sys.executable, "-c", REFUSE_TORCH, boards["two"]],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    # the CD diagram drawn; 3 pairs per row, 3 rows on the second dataset and on the first
    assert proc.stdout.split() == ["True", str(3 * 3 + 3 * 3)]
