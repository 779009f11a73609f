"""MMF's models as leaderboard methods: ``--methods`` takes any registered model name,
MMF's are labelled "<name> (MMF)" beside ours (whose labels are unchanged), and their
null per-modality accuracies show as "–" in Table 1."""

import pytest

from mla_plugin.leaderboard import reports
from mla_plugin.leaderboard.methods import variant_label
from mla_plugin.leaderboard.plan import plan
from tests.support import REPO


def test_labels_of_ours_and_mmfs_models():
    assert variant_label("mla_late_fusion") == "Late Fusion"
    assert variant_label("late_fusion") == "late_fusion (MMF)"
    assert variant_label("mmbt") == "mmbt (MMF)"


def test_plan_accepts_registered_models_and_names_the_unknown(tmp_path):
    cells = plan(["synthetic"], ["concat_bow", "mla"], [1], [0.0], str(tmp_path), root=REPO)
    assert {c.variant.method for c in cells} == {"concat_bow", "mla"}
    assert "model=concat_bow" in cells[0].command("mmf_run") + cells[1].command("mmf_run")
    with pytest.raises(ValueError, match=r"unknown methods \['no_such_model'\].*mmbt"):
        plan(["synthetic"], ["no_such_model"], [1], [0.0], str(tmp_path), root=REPO)


def _run(method, test, seed=1):
    return {
        "dataset": "synthetic",
        "method": method,
        "variant": method,
        "seed": seed,
        "missing_rate": 0.0,
        "train_mask": None,
        "selection": "val",
        "selected_epoch": 1,
        "modalities": ["strong", "weak"],
        "val": test,
        "test": test,
        "majority": {},
        "run_dir": f"/x/{method}/{seed}",
    }


def test_table1_shows_mmf_models_beside_ours_with_dashes_for_null_modalities():
    runs = [
        _run("mla_late_fusion", {"multi": 0.9, "strong": 0.8, "weak": 0.4}),
        _run("late_fusion", {"multi": 0.7, "strong": None, "weak": None}),
    ]
    table = reports.table1(runs)
    labels = list(table.means.columns)
    assert labels == ["Late Fusion", "late_fusion (MMF)"]
    rows = [tuple(r) for r in table.means.index]
    mmf = labels.index("late_fusion (MMF)")
    cells = {row[1]: table.cell(i, mmf) for i, row in enumerate(rows)}
    assert cells == {"Strong": "–", "Weak": "–", "Multi": "70.00"}
    assert table.cell(rows.index(("synthetic", "Strong")), 0) == "80.00"
