"""Every trial informs the search (issue 25): a diverged trial is told a value and TPE's
next proposals leave its region; pruning stops a trial's run early through the RDB
storage and the study records it pruned; the report counts both."""

import json
import math
import os

import optuna
import pytest
from mmf.common.registry import registry

from mla_plugin.leaderboard import search_space, tuning
from mla_plugin.leaderboard.plan import plan
from mla_plugin.utils.trial import TRIAL_ENV, TRIAL_FILE
from tests.support import make_trainer, read_metrics

SMALL = [
    "dataset_config.synthetic.sizes.train=128",
    "dataset_config.synthetic.sizes.val=128",
    "dataset_config.synthetic.sizes.test=64",
]
DIVERGES_ABOVE = 0.03  # the fake runs' lr where training diverges


def _space(startup=3):
    space = search_space.load_space()
    space["startup_trials"] = startup
    space["sampler_seed"] = 4  # random start-up lrs 0.23, 6e-4, 0.13: two of three diverge
    space["shared"] = {  # this test's own range, whatever search.yaml ships
        "optimizer.params.lr": {"low": 1e-4, "high": 0.3, "log": True},
        "optimizer.params.weight_decay": {"low": 1e-6, "high": 1e-2, "log": True},
    }
    space["methods"] = {"concat": {}}
    return space


class FakeRunner:
    """Writes what a trial's run would: val accuracy peaking at lr 3e-3; above
    ``DIVERGES_ABOVE`` the run diverges in epoch 2 (trial.json, val 0.2 before it);
    ``prune`` (a set of trial folders' names) ends as pruned."""

    def __init__(self, prune=()):
        self.prune, self.runs = set(prune), []

    def run(self, cells):
        for c in cells:
            lr = float(next(o for o in c.overrides if "lr=" in o).split("=")[1])
            os.makedirs(c.save_dir, exist_ok=True)
            self.runs.append(lr)
            val = 0.9 - 0.1 * abs(math.log10(lr) - math.log10(3e-3))
            if lr > DIVERGES_ABOVE:
                outcome = {"outcome": "diverged", "epoch": 2, "update": 7, "value": 0.2}
                json.dump(outcome, open(os.path.join(c.save_dir, TRIAL_FILE), "w"))
            elif os.path.basename(os.path.dirname(c.save_dir)) in self.prune:
                outcome = {"outcome": "pruned", "epoch": 3, "value": 0.1}
                json.dump(outcome, open(os.path.join(c.save_dir, TRIAL_FILE), "w"))
            json.dump({"val": {"multi": val}}, open(c.metrics_path, "w"))
            assert json.loads(dict(c.env)[TRIAL_ENV])["study"] == "synthetic/concat/eta0"


def test_a_diverged_trial_is_told_a_value_and_the_next_proposals_move_away(tmp_path):
    out = str(tmp_path / "board")
    cells = plan(["synthetic"], ["concat"], [1], [0.0], out)
    lines, runner = [], FakeRunner()
    tuner = tuning.Tuner(cells, 10, out, None, _space(), runner, lines.append, prune="median")
    selection = tuner.run()
    study = optuna.load_study(study_name="synthetic/concat/eta0", storage=tuner.url)
    diverged = [t for t in study.trials if t.params["optimizer.params.lr"] > DIVERGES_ABOVE]
    # the random start-up trials (0-2) include the diverging region, so the test means it
    assert any(t.number < 3 for t in diverged)
    for t in diverged:  # told (COMPLETE) with the value before diverging, not FAIL
        assert t.state == optuna.trial.TrialState.COMPLETE and t.value == 0.2
        assert t.user_attrs["diverged_epoch"] == 2
    # one line each, with the trial, the epoch and the parameters
    said = [line for line in lines if "diverged in epoch 2" in line]
    assert len(said) == len(diverged)
    assert all("optimizer.params.lr=" in line for line in said)
    # TPE learned: of its 7 proposals after the start-up, at most one is back up there
    # (with FAIL it ignores them: uniform on the log scale, about 2 of 7 land there)
    later = [t for t in diverged if t.number >= 3]
    assert len(later) <= 1, [t.params for t in study.trials]
    assert selection["studies"]["synthetic/concat/eta0"]["diverged"] == len(diverged)
    assert selection["pruner"]["pruner"] == "median"


def test_a_pruned_trial_is_told_pruned_counted_and_shown(tmp_path):
    out = str(tmp_path / "board")
    cells = plan(["synthetic"], ["concat"], [1], [0.0], out)
    lines = []
    tuner = tuning.Tuner(
        cells, 3, out, None, _space(), FakeRunner(prune={"trial001"}), lines.append, "median"
    )
    selection = tuner.run()
    states = [t.state for t in tuner.studies["synthetic/concat/eta0"].optuna_study.trials]
    assert states[1] == optuna.trial.TrialState.PRUNED
    assert any("trial 1 pruned after epoch 3" in line for line in lines)
    study = selection["studies"]["synthetic/concat/eta0"]
    assert study["pruned"] == 1 and study["trials"] == 3 and study["best_trial"] != 1
    assert "median pruner" in tuning.header(selection)
    assert "| 3 (1 pruned" in tuning.markdown(selection)
    # another --prune on the same storage is refused, naming the pruner
    with pytest.raises(ValueError, match="another pruner"):
        tuning.Tuner(cells, 3, out, None, _space(), FakeRunner(), print, "asha").run()


def _trial_run(tmp_path, monkeypatch, name, *opts, pruner="median"):
    """A trial's run in this process, as the leaderboard starts it: the environment names
    trial 2 of a study whose trials 0 and 1 reached val 0.9 from epoch 1 on."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(storage=url, study_name="s", direction="maximize")
    for _ in range(2):
        trial = study.ask()
        for step in range(1, 7):
            trial.report(0.9, step)
        study.tell(trial, 0.9)
    study.ask()  # trial 2, running
    spec = {"storage": url, "study": "s", "trial": 2, "pruner": pruner}
    monkeypatch.setenv(TRIAL_ENV, json.dumps(dict(spec, pruner_startup=2, pruner_warmup=2)))
    registry.mapping["state"].pop("writer", None)
    save_dir = str(tmp_path / name)
    trainer = make_trainer(save_dir, "model=concat", "training.max_epochs=6", *SMALL, *opts)
    trainer.train()
    return save_dir, optuna.load_study(study_name="s", storage=url).trials[2]


def test_pruning_stops_a_trial_run_early_through_the_storage(tmp_path, monkeypatch):
    # lr 1e-7: it stays near chance, far under the earlier trials' 0.9
    save_dir, trial = _trial_run(tmp_path, monkeypatch, "pruned", "optimizer.params.lr=1e-7")
    outcome = json.load(open(os.path.join(save_dir, TRIAL_FILE)))
    assert outcome["outcome"] == "pruned" and outcome["epoch"] == 2  # the warm-up's end
    assert sorted(trial.intermediate_values) == [1, 2]  # reported per epoch, through the DB
    log = open(os.path.join(save_dir, "train.log")).read()
    assert "epoch 2/6 updates" in log and "epoch 3/6" not in log
    assert read_metrics(save_dir)["val"]["multi"] == pytest.approx(outcome["value"])


def test_a_diverged_trial_run_stops_and_records_its_value_instead_of_raising(tmp_path, monkeypatch):
    save_dir, _ = _trial_run(
        tmp_path, monkeypatch, "diverged", "optimizer.params.lr=1e30", pruner="none"
    )
    outcome = json.load(open(os.path.join(save_dir, TRIAL_FILE)))
    assert outcome["outcome"] == "diverged" and outcome["epoch"] == 1
    # no validation before it: the val split's majority rate
    assert outcome["value"] == read_metrics(save_dir)["majority"]["val"]["rate"]["multi"]
    assert outcome["value_from"] == "val majority rate"
