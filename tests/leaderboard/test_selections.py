"""``--selections val test_max``: each method under both model selections, side by side
(its ``@test_max`` runs in their own folder, key and column), the references and the
probe once, tuning on val only, and the report's table of what selecting on test adds."""

import json
import os

import pytest
import yaml

from mla_plugin.leaderboard import cli, reports, search_space, settings, tuning
from mla_plugin.leaderboard.methods import variant_order
from mla_plugin.leaderboard.plan import plan
from mla_plugin.leaderboard.reports import pairs
from mla_plugin.leaderboard.reports.selection import selection_gain
from tests.support import REPO, run_cli

TINY = ["training.max_epochs=2"]


def _plan(tmp_path, selections, overrides=TINY, seeds=(1, 2)):
    return plan(["synthetic"], ["concat"], list(seeds), [0.0], str(tmp_path), root=REPO,
                overrides=overrides, references=["probe", "unimodal"],
                selections=selections)  # fmt: skip


def test_each_method_runs_under_each_selection_the_references_once(tmp_path):
    cells = _plan(tmp_path, ["val", "test_max"])
    by = {(c.variant.name, c.selection, c.seed): c for c in cells}
    assert len(cells) == len(by)
    assert {(v, s) for v, s, _ in by} == {("concat", "val"), ("concat", "test_max"),
        ("unimodal[modality=strong]", "val"), ("unimodal[modality=weak]", "val"),
        ("probe", None)}  # fmt: skip
    fair, test = by[("concat", "val", 2)], by[("concat", "test_max", 2)]
    assert test.save_dir == str(tmp_path / "runs/synthetic/concat@test_max/eta0/seed2")
    assert fair.save_dir == str(tmp_path / "runs/synthetic/concat/eta0/seed2")
    assert fair.key != test.key and fair.identity != test.identity
    assert test.command("mmf_run")[-1] == "protocol.selection=test_max"
    assert fair.command("mmf_run")[-1] == "protocol.selection=val"
    assert tuning.reads_test(test) and not tuning.reads_test(fair)
    # without --selections: the cells (and their identities) are as before
    plain = _plan(tmp_path, [])
    assert all(c.selection is None and "selection" not in c.identity for c in plain)
    assert not any("protocol.selection" in " ".join(c.command("mmf_run")) for c in plain)


@pytest.mark.parametrize(
    "how",
    [{"selections": ["test_max", "val"]}, {"overrides": [*TINY, "protocol.selection=test_max"]}],
)
def test_tuning_trials_select_on_val_whatever_the_cells_do(tmp_path, how):
    """A trial is judged on val: under --selections (test_max planned first) or with
    --set protocol.selection=test_max, its runs select on val; both selections of a method
    share the study (one tuning, applied to both)."""
    cells = _plan(tmp_path, how.get("selections", []), how.get("overrides", TINY), seeds=[1])
    cells = [c for c in cells if c.variant.name == "concat"]
    tuner = tuning.Tuner(cells, 2, str(tmp_path), None, search_space.load_space(), None, print)
    (study,) = tuner.studies.values()
    trial = study.trial_cells(0, {}, [1001], str(tmp_path), {})[0]
    assert not tuning.reads_test(trial)
    chosen = [a for a in trial.command("mmf_run") if a.startswith("protocol.selection=")]
    assert chosen[-1:] in ([], ["protocol.selection=val"])  # the config's val, or val last
    if "overrides" in how:  # --set test_max: overridden by val, last
        assert trial.selection == "val" and chosen[-1] == "protocol.selection=val"
    assert os.sep + "concat" + os.sep in trial.save_dir and "@" not in trial.save_dir


def test_a_fair_board_keeps_its_trials_identity(tmp_path):
    cells = _plan(tmp_path, [], seeds=[1])
    cells = [c for c in cells if c.variant.name == "concat"]
    tuner = tuning.Tuner(cells, 2, str(tmp_path), None, search_space.load_space(), None, print)
    (study,) = tuner.studies.values()
    assert study.trial_cells(0, {}, [1001], str(tmp_path), {})[0].selection is None


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--selections", "val", "last"], "--selections: ['last'] not among ['val', 'test_max']"),
        (["--selections", "test_max", "--set", "protocol.selection=val"], "both choose"),
    ],
)
def test_bad_selections_are_usage_errors(tmp_path, capsys, args, expected):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--out", str(tmp_path / "board"), "--dry-run", *args])
    assert exc.value.code == 2 and expected in capsys.readouterr().err
    assert settings.SELECTIONS == ("val", "test_max")


def _run(out, folder, seed, selection, multi, strong):
    method = folder.split("@")[0]
    run = os.path.join(out, "runs", "synthetic", folder, "eta0", f"seed{seed}")
    os.makedirs(run)
    test = {"multi": multi, "strong": strong, "weak": 0.4}
    rate = {"multi": 0.25, "strong": 0.25, "weak": 0.25}
    metrics = {"method": method, "dataset": "synthetic", "seed": seed, "selection": selection,
               "selected_epoch": 2, "modalities": ["strong", "weak"], "val": test,
               "test": test, "majority": {"test": {"rate": rate}}}  # fmt: skip
    with open(os.path.join(run, "metrics.json"), "w") as f:
        json.dump(metrics, f)
    with open(os.path.join(run, "config.yaml"), "w") as f:
        yaml.safe_dump({"model": method, "datasets": "synthetic"}, f)


def test_the_report_shows_what_selecting_on_test_adds_paired_by_seed(tmp_path):
    out = str(tmp_path)
    _run(out, "concat", 1, "val", 0.60, 0.50)
    _run(out, "concat", 2, "val", 0.70, 0.55)
    _run(out, "concat@test_max", 1, "test_max", 0.65, 0.45)
    _run(out, "concat@test_max", 2, "test_max", 0.80, 0.55)
    for seed in (1, 2):
        _run(out, "sum", seed, "val", 0.5, 0.5)
    built = reports.build(out)
    gain = built["selection"]
    multi, strong = gain.means.loc[("synthetic", "Multi"), "Concat"], gain.means.iloc[0, 0]
    assert multi == pytest.approx(7.5) and strong == pytest.approx(-2.5)  # (5+10)/2, (-5+0)/2
    assert gain.stds.loc[("synthetic", "Multi"), "Concat"] == pytest.approx(2.5 * 2**0.5)
    t1 = built["table1"]  # side by side; the test-selected column is never ranked
    assert list(t1.means.columns) == ["Sum", "Concat", "Concat ‡test-selected"]
    marks = t1.marks.loc[("synthetic", "Multi")]  # 50, 65 and 72.5
    assert marks.tolist() == ["second", "best", ""]
    assert list(gain.means.columns) == ["Concat"]  # sum has one selection only
    # the seeds line: the ‡ column's std is listed, but it is not "close to the best"
    (line,) = pairs.seed_lines(t1)
    assert "Concat ‡test-selected 10.61" in line
    assert line.endswith("Every other method trails the best (Concat) by more than a seed std.")
    md = open(os.path.join(out, "leaderboard.md")).read()
    assert md.index("### Table 1") < md.index("### What selecting on test adds")
    assert "What selecting on test adds" in open(os.path.join(out, "index.html")).read()


def test_a_board_with_one_selection_has_no_gain_table(tmp_path):
    _run(str(tmp_path), "concat", 1, "val", 0.6, 0.5)
    assert reports.build(str(tmp_path))["selection"] is None


def test_test_selected_variants_sit_beside_their_fair_ones():
    got = variant_order({"mla@test_max", "concat", "ogm", "mla", "concat@test_max"})
    assert got == ["concat", "concat@test_max", "mla", "mla@test_max", "ogm"]


@pytest.mark.subprocess
def test_a_board_runs_both_selections_side_by_side(tmp_path):
    """Through the CLI and mmf_run: the same training under val and test_max selection
    (the runs differ only in the epoch they report), so per seed the test-selected fused
    accuracy is never below the val-selected one, and the report shows both and the gain."""
    out = str(tmp_path / "board")
    args = ["--datasets", "synthetic", "--methods", "concat", "--seeds", "2", "--jobs", "2"]
    args += ["--selections", "val", "test_max", "--references", "none", "--gap-methods", "none"]
    args += ["--out", out, "--no-progress", "--", "training.max_epochs=4"]
    args += [f"dataset_config.synthetic.sizes.{s}=128" for s in ("train", "val", "test")]
    run_cli("mla-leaderboard", args, timeout=600)
    multi = {}
    for folder, selection in (("concat", "val"), ("concat@test_max", "test_max")):
        for seed in (1, 2):
            path = os.path.join(out, "runs", "synthetic", folder, "eta0", f"seed{seed}")
            metrics = json.load(open(os.path.join(path, "metrics.json")))
            assert metrics["selection"] == selection
            multi[selection, seed] = metrics["test"]["multi"]
    assert all(multi["test_max", s] >= multi["val", s] for s in (1, 2)), multi
    md = open(os.path.join(out, "leaderboard.md")).read()
    assert "| Concat | Concat ‡test-selected |" in md and "What selecting on test adds" in md


def test_no_runs_no_gain_table():
    assert selection_gain([]) is None
