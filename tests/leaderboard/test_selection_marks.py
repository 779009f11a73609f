"""A run selected on the test split (``protocol.selection: test_max``, or its old name
``best_on_test``) is never shown as if it were fairly selected: every table that holds one
of its cells shows it in its own, marked column beside the val-selected one, with the
legend that says the selection is not fair."""

import json
import os

import yaml

from mla_plugin.leaderboard import reports
from mla_plugin.leaderboard.methods import TEST_SELECTED_LEGEND, TEST_SELECTED_MARK


def _run(out, seed, selection, acc):
    run = os.path.join(out, "runs", "synthetic", "concat", "eta0", f"seed{seed}")
    os.makedirs(run)
    test = {"multi": acc, "strong": acc - 0.1, "weak": 0.4}
    rate = {"multi": 0.25, "strong": 0.25, "weak": 0.25}
    metrics = {"method": "concat", "dataset": "synthetic", "seed": seed, "selection": selection,
               "selected_epoch": 2, "modalities": ["strong", "weak"], "val": test,
               "test": test, "majority": {"test": {"rate": rate}}}  # fmt: skip
    with open(os.path.join(run, "metrics.json"), "w") as f:
        json.dump(metrics, f)
    with open(os.path.join(run, "config.yaml"), "w") as f:
        yaml.safe_dump({"model": "concat", "datasets": "synthetic"}, f)
    with open(os.path.join(run, "gap.json"), "w") as f:
        json.dump({"gap": 0.5, "pairs": {"strong|weak": 0.5}, "split": "test"}, f)


def _tables(markdown):
    return [t for t in markdown.split("### ")[1:]]


def test_test_selected_cells_are_marked_in_every_table(tmp_path):
    for old_name in ("test_max", "best_on_test"):
        out = str(tmp_path / old_name)
        _run(out, 1, "val", 0.6)
        _run(out, 2, old_name, 0.7)  # one board, both selections
        built = reports.build(out)
        t1 = built["table1"]
        labels = list(t1.means.columns)
        assert labels == ["Concat", f"Concat {TEST_SELECTED_MARK}test-selected"]
        assert t1.means[labels].loc[("synthetic", "Multi")].tolist() == [60.0, 70.0]
        md = open(os.path.join(out, "leaderboard.md")).read()
        marked = [t for t in _tables(md) if TEST_SELECTED_MARK in t]
        assert len(marked) >= 2  # Table 1 and the modality gap's table at least
        for table in marked:
            assert TEST_SELECTED_LEGEND in table, table
        page = open(os.path.join(out, "index.html")).read()
        assert page.count(TEST_SELECTED_LEGEND) == len(marked)
        proto = reports.protocol(built["runs"], out)["synthetic"]
        assert "NOT A FAIR SELECTION" in proto["model selection"]


def test_a_board_without_test_selection_has_no_mark(tmp_path):
    out = str(tmp_path / "fair")
    _run(out, 1, "val", 0.6)
    reports.build(out)
    md = open(os.path.join(out, "leaderboard.md")).read()
    assert TEST_SELECTED_MARK not in md and TEST_SELECTED_LEGEND not in md
