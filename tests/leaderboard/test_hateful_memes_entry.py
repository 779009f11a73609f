"""Hateful Memes (MMF's own builder) in the leaderboard: its dataset entry, and MMF's
ROC-AUC beside accuracy in the reports."""

import math

from mla_plugin.leaderboard.plan import plan
from mla_plugin.leaderboard.reports import roc_auc_table, tidy
from tests.builders.test_hateful_memes import write_fixture
from tests.support import REPO


def test_entry_points_mmfs_builder_at_its_data_folder(tmp_path):
    write_fixture(str(tmp_path / "data"))
    root = str(tmp_path / "data" / "datasets")
    cells = plan(
        [f"hateful_memes:data_dir={root},name=hm", "hateful_memes"],
        ["mla"],
        [1],
        [0.0],
        str(tmp_path / "out"),
        root=REPO,
    )
    given, default = cells
    assert given.dataset == "hm" and given.mmf_dataset == "hateful_memes"
    assert given.overrides == (f"dataset_config.hateful_memes.data_dir={root}",)
    assert given.data["dir"] == root and given.data["default_location"] is False
    # left to MMF's ${env.data_dir}: not guessed here (the run names the folder it expected)
    assert default.data["dir"] is None and default.data["default_location"] is True


def _run(dataset, method, seed, test_acc, auc=None):
    test = {"multi": test_acc, "text": test_acc, "image": test_acc}
    return {
        "dataset": dataset,
        "method": method,
        "variant": method,
        "seed": seed,
        "missing_rate": 0.0,
        "train_mask": None,
        "selection": "val",
        "selected_epoch": 1,
        "modalities": ["text", "image"],
        "val": test,
        "test": test,
        "majority": {},
        "roc_auc": None if auc is None else {"val": auc, "test": auc},
        "run_dir": f"/o/{dataset}/{method}/{seed}",
    }


def test_roc_auc_table_shows_binary_tasks_only():
    auc = {"multi": 0.8, "text": 0.6, "image": None}
    runs = [
        _run("hateful_memes", "mla", 1, 0.7, auc),
        _run("hateful_memes", "mla", 2, 0.7, {**auc, "multi": 0.6}),
        _run("hateful_memes", "concat", 1, 0.6, {**auc, "multi": 0.5}),
        _run("food101", "mla", 1, 0.5),  # 101 classes: roc_auc null, no rows
    ]
    frame = tidy(runs)
    hm = frame[(frame.dataset == "hateful_memes") & (frame.split == "test")]
    assert sorted(hm["roc_auc"].dropna()) == [0.5, 0.6, 0.6, 0.6, 0.6, 0.8]
    table = roc_auc_table(runs)
    assert [k[0] for k in table.means.index] == ["Hateful Memes"] * 3
    assert list(table.means.columns) == ["Concat", "MLA"]
    multi = table.means.loc[("Hateful Memes", "Multi")]
    assert math.isclose(multi["MLA"], 70.0) and math.isclose(multi["Concat"], 50.0)
    assert math.isnan(table.means.loc[("Hateful Memes", "Image"), "MLA"])
    assert roc_auc_table([_run("food101", "mla", 1, 0.5)]) is None
