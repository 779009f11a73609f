"""The reports as one part (:mod:`mla_plugin.leaderboard.reports`): they read a leaderboard
folder and write its files without torch or MMF, and take each run's modality gap from its
row (``gap.json``, else the ``modality_gap.json`` of earlier leaderboards)."""

import ast
import json
import os
import subprocess
import sys

import pytest
import yaml

from mla_plugin.leaderboard import reports
from tests.support import REPO, subprocess_env

REPORTS_DIR = os.path.join(REPO, "mla_plugin", "leaderboard", "reports")
HEAVY = ("torch", "mmf", "mla_bridge")


def _write_board(out, gap_file="gap.json"):
    """Two finished hand-made runs (concat and mla, seed 1) with a config.yaml and a gap."""
    for method, acc, gap in (("concat", 0.6, 0.9), ("mla", 0.8, 0.5)):
        run = os.path.join(out, "runs", "synthetic", method, "eta0", "seed1")
        os.makedirs(run)
        test = {"multi": acc, "strong": acc - 0.1, "weak": 0.4}
        rate = {"multi": 0.25, "strong": 0.25, "weak": 0.25}
        metrics = {"method": method, "dataset": "synthetic", "seed": 1, "selection": "val",
                   "selected_epoch": 2, "modalities": ["strong", "weak"], "val": test,
                   "test": test, "majority": {"test": {"rate": rate}}}  # fmt: skip
        config = {"model": method, "datasets": "synthetic",
                  "training": {"max_epochs": 2, "batch_size": 64, "lr_scheduler": False},
                  "optimizer": {"type": "adam", "params": {"lr": 0.001}},
                  "model_config": {method: {"encoders": {"strong": {
                      "type": "mlp", "params": {"out_dim": 8, "in_dim": 4}}}}}}  # fmt: skip
        with open(os.path.join(run, "metrics.json"), "w") as f:
            json.dump(metrics, f)
        with open(os.path.join(run, "config.yaml"), "w") as f:
            yaml.safe_dump(config, f, sort_keys=False)  # as the trainer writes it
        with open(os.path.join(run, gap_file), "w") as f:
            json.dump({"gap": gap, "pairs": {"strong|weak": gap}, "split": "test"}, f)


def _imported_modules(path):
    tree = ast.parse(open(path).read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module


def test_report_modules_import_neither_the_framework_nor_the_mmf_layer():
    forbidden = HEAVY + tuple(
        f"mla_plugin.{p}" for p in ("trainers", "models", "builders", "data", "analysis")
    )
    found = {
        (name, module)
        for name in os.listdir(REPORTS_DIR)
        if name.endswith(".py")
        for module in _imported_modules(os.path.join(REPORTS_DIR, name))
        if module == "mla_plugin" or module.startswith(forbidden)
    }
    assert not found


def test_the_gap_comes_from_each_runs_row(tmp_path):
    for gap_file in ("gap.json", "modality_gap.json"):  # the cell's, an earlier leaderboard's
        out = str(tmp_path / gap_file)
        _write_board(out, gap_file)
        runs = {r["method"]: r for r in reports.load_runs(out)}
        assert runs["mla"]["gap"]["gap"] == 0.5 and runs["concat"]["gap"]["gap"] == 0.9
        table = reports.gap_table(list(runs.values()))
        assert table.means.loc["synthetic"].tolist() == [0.9, 0.5]  # Concat, MLA
    proto = reports.protocol(reports.load_runs(out), out)["synthetic"]
    assert proto["batch size"] == "64" and proto["optimizer"] == "adam lr 0.001"
    # read from config.yaml, listed in the order of the run_config.json of earlier boards
    assert proto["encoders"] == "strong: mlp(in_dim=4, out_dim=8)"


# A fresh interpreter where torch, MMF and the bridge cannot be imported.  The packages
# mla_plugin and mla_plugin.models are entered without their __init__, which registers the
# plugin with MMF today (issue 22 makes that import cheap; then the stubs change nothing).
FRESH = """
import importlib.abc, os, sys, types
HEAVY = {heavy!r}
for name in [m for m in sys.modules if m.split(".")[0] in HEAVY]:
    del sys.modules[name]  # the .pth's start-up import of the bridge
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in HEAVY:
            raise ImportError("the reports imported " + name)
sys.meta_path.insert(0, Refuse())
for pkg in {stubs!r}:
    module = types.ModuleType(pkg)
    module.__path__ = [os.path.join({repo!r}, *pkg.split("."))]
    sys.modules[pkg] = module
from mla_plugin.leaderboard import reports
built = reports.build(sys.argv[1])
assert built["gap"] is not None and built["table1"] is not None
print(sorted(m for m in HEAVY if m in sys.modules))
"""


@pytest.mark.subprocess
def test_reports_build_in_a_fresh_interpreter_without_torch_or_mmf(tmp_path):
    out = str(tmp_path / "board")
    _write_board(out)
    code = FRESH.format(heavy=HEAVY, stubs=["mla_plugin", "mla_plugin.models"], repo=REPO)
    proc = subprocess.run(
        [sys.executable, "-c", code, out], env=subprocess_env(), capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
    for name in ("leaderboard.md", "leaderboard.csv", "modality_gap.csv", "index.html"):
        assert os.path.getsize(os.path.join(out, name)) > 0


@pytest.mark.subprocess
def test_reports_build_in_a_plain_fresh_interpreter_without_torch_or_mmf(tmp_path):
    out = str(tmp_path / "board")
    _write_board(out)
    code = FRESH.format(heavy=HEAVY, stubs=[], repo=REPO)
    proc = subprocess.run(
        [sys.executable, "-c", code, out], env=subprocess_env(), capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"
