"""``mla-leaderboard --tune N`` (tuning.py), the CLI's usage errors, the reports replaced as
one set, and the written files' permissions."""

import glob
import json
import os
import shutil
import signal
import stat
import subprocess
import time

import optuna
import pytest
import yaml

from mla_plugin.leaderboard import cli, reports, search_space, tuning
from mla_plugin.leaderboard.plan import plan
from mla_plugin.utils import io
from tests.support import BIN, REPO, subprocess_env

TINY = [
    "training.max_epochs=1",
    "dataset_config.synthetic.sizes.train=64",
    "dataset_config.synthetic.sizes.val=64",
    "dataset_config.synthetic.sizes.test=64",
]


# ------------------------------------------------------------------ the CLI
def test_report_only_into_an_unusable_out_exits_2_naming_it(capsys):
    """Was a FileNotFoundError traceback and exit 1, the only usage error not exiting 2."""
    out = "/proc/no-such-folder/board"  # /proc takes no new folder, even for root
    assert cli.main(["--report-only", "--out", out]) == 2
    err = capsys.readouterr().err
    assert f"mla-leaderboard: cannot write the reports into --out {out}: " in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--seeds", "abc"], "--seeds: expected a count N"),
        (["--seeds", "1", "-2"], "--seeds: expected a count N"),
        (["--seeds", "0"], "a count must be >= 1"),
        (["--jobs", "0"], "--jobs must be an integer >= 1"),
        (["--gpus", "0", "abc"], "--gpus: ['abc'] are not GPU indices"),
        (["--out", "{file}"], "is a file, not a folder"),
        (["--out", "{file}/sub"], "is a file, not a folder"),
        (["--tune", "0"], "--tune N: N must be >= 1"),
        (["--tune", "2", "--storage", "not a url"], "is not a SQLAlchemy URL"),
        (["--config", "{list_yaml}"], "expected a mapping of leaderboard settings"),
        (["--config", "{bad_jobs_yaml}"], "jobs must be int"),
        (["--config", "{missing}"], "no such file"),
        (["--config", "{bad_rates_yaml}"], "missing_rates (--missing-rates): expected numbers"),
        (["--tune", "2", "--search-space", "{bad_space}"], "methods.qmf.x: need low < high"),
    ],
)
def test_cli_usage_errors_exit_2_before_anything_runs(tmp_path, capsys, args, expected):
    paths = {
        "file": tmp_path / "a_file",
        "list_yaml": tmp_path / "list.yaml",
        "bad_jobs_yaml": tmp_path / "jobs.yaml",
        "missing": tmp_path / "nosuch.yaml",
        "bad_rates_yaml": tmp_path / "rates.yaml",
        "bad_space": tmp_path / "space.yaml",
    }
    paths["file"].write_text("x")
    paths["list_yaml"].write_text("- datasets: [synthetic]\n")
    paths["bad_jobs_yaml"].write_text("leaderboard:\n  jobs: two\n")
    paths["bad_rates_yaml"].write_text("leaderboard:\n  missing_rates: x\n")
    space = yaml.safe_load(open(search_space.default_space_path()))
    space["search"]["methods"]["qmf"] = {"x": {"low": 1, "high": 0.5}}
    paths["bad_space"].write_text(yaml.safe_dump(space))
    args = [a.format(**paths) for a in args]
    with pytest.raises(SystemExit) as exc:
        cli.main(["--out", str(tmp_path / "board"), *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "usage: mla-leaderboard" in err and expected in err
    assert "Traceback" not in err
    assert not (tmp_path / "board").exists()


def test_tuning_and_final_seeds_must_be_disjoint(tmp_path):
    cells = plan(["synthetic"], ["concat"], [1001], [0.0], str(tmp_path), overrides=TINY)
    with pytest.raises(ValueError, match=r"seeds \[1001\] are both leaderboard seeds"):
        tuning.Tuner(cells, 2, str(tmp_path), None, search_space.load_space(), None, print)


# ------------------------------------------------------------------ reports and modes
def test_reports_are_replaced_as_one_set_and_readable_by_the_group(tmp_path, monkeypatch):
    out = str(tmp_path)
    io.atomic_write_set(out, {"a.md": "one\n", "b.csv": "one\n"})
    real = io.atomic_write_text
    written = []

    def dies_after_one(text, path):  # a kill after the first file of the second set
        if written:
            raise KeyboardInterrupt
        written.append(path)
        real(text, path)

    monkeypatch.setattr(io, "atomic_write_text", dies_after_one)
    with pytest.raises(KeyboardInterrupt):
        io.atomic_write_set(out, {"a.md": "two\n", "b.csv": "two\n"})
    # the reader sees the whole first set, never a mix
    assert [open(os.path.join(out, n)).read() for n in ("a.md", "b.csv")] == ["one\n"] * 2
    monkeypatch.setattr(io, "atomic_write_text", real)
    paths = io.atomic_write_set(out, {"a.md": "three\n", "b.csv": "three\n"})
    assert [open(p).read() for p in paths.values()] == ["three\n"] * 2
    # the killed build's folder and the first set's are gone
    assert len(glob.glob(os.path.join(out, io.SET_DIR, "build-*"))) == 1
    umask = os.umask(0o022)
    os.umask(umask)
    assert io.FILE_MODE == 0o666 & ~umask and io.DIR_MODE == 0o777 & ~umask
    for p in paths.values():
        mode = stat.S_IMODE(os.stat(p).st_mode)
        assert mode == io.FILE_MODE and mode & stat.S_IRGRP
        folder = stat.S_IMODE(os.stat(os.path.dirname(os.path.realpath(p))).st_mode)
        assert folder == io.DIR_MODE and folder & stat.S_IXGRP


def test_report_says_untuned_or_shows_the_selection(tmp_path):
    out = str(tmp_path)
    md = open(reports.build(out)["paths"]["leaderboard.md"]).read()
    assert "untuned (fixed protocol)" in md and "Selected hyper-parameters" not in md
    selection = {
        "budget": 8,
        "storage": "sqlite:///x.db",
        "sampler": "TPESampler(seed=0 + trial number, 3 random startup trials), no pruning",
        "tuning_seeds": [1001],
        "objective": "val",
        "studies": {
            "synthetic/qmf/eta0": {
                "dataset": "synthetic",
                "method": "qmf",
                "setting": "eta0",
                "best_trial": 5,
                "best_val": 0.8125,
                "params": {"optimizer.params.lr": 0.0123456, "model_config.qmf.x": "a<b"},
                "overrides": [],
                "trials": 8,
                "failed": 1,
            }
        },
    }
    io.atomic_write_json(selection, os.path.join(out, tuning.TUNING_FILE))
    paths = reports.build(out)["paths"]
    md = open(paths["leaderboard.md"]).read()
    assert "tuned on val, 8 trials per method" in md and "untuned" not in md
    assert "| synthetic | QMF | 8 (1 failed) | 5 | 81.25 |" in md
    assert "optimizer.params.lr=0.01235" in md
    page = open(paths["index.html"]).read()
    assert "Selected hyper-parameters" in page and "a&lt;b" in page
    csv = open(paths["tuning.csv"]).read().splitlines()
    assert csv[0].startswith("dataset,method,setting,trials,failed,best_trial,best_val")


# ------------------------------------------------------------------ kill and resume
class ReplayRunner:
    """An uninterrupted study's runner: each trial's value is the one the real runs got
    for the same parameters (seeded runs give the same numbers), read from ``real_out``."""

    def __init__(self, real_out):
        self.real = {}
        for path in glob.glob(os.path.join(real_out, "tuning", "*", "*", "*", "*", "*")):
            record = json.load(open(os.path.join(path, "cell.json")))
            self.real[tuple(record["identity"]["overrides"])] = path

    def run(self, cells):
        for c in cells:
            source = self.real.get(tuple(c.overrides))
            assert source, f"the uninterrupted study proposes {c.overrides}, never run"
            os.makedirs(c.save_dir, exist_ok=True)
            shutil.copy(os.path.join(source, "metrics.json"), c.metrics_path)


@pytest.mark.subprocess
@pytest.mark.slow
def test_killed_tuning_resumes_without_redoing_trials_and_equals_an_uninterrupted_study(
    tmp_path, capsys
):
    """SIGKILL the tuning leaderboard's process group while trial 1 runs, restart: trial 0
    is not rerun, trial 1 is taken over under its own number and parameters, and the
    study's trials (parameters and values) equal an uninterrupted study's."""
    out = str(tmp_path / "board")
    space = yaml.safe_load(open(search_space.default_space_path()))
    space["search"]["startup_trials"] = 1  # trial 1 is TPE's, from trial 0's value
    space_path = tmp_path / "space.yaml"
    space_path.write_text(yaml.safe_dump(space))
    args = ["--datasets", "synthetic", "--methods", "concat", "--seeds", "1", "--tune", "2"]
    args += ["--search-space", str(space_path), "--gap-methods", "none", "--no-progress"]
    args += ["--references", "none", "--out", out, "--", *TINY]
    trial_dir = os.path.join(out, "tuning", "synthetic", "concat", "eta0")
    logs = [open(tmp_path / f"board{k}.log", "w+") for k in range(2)]

    def start(log):
        return subprocess.Popen(
            [os.path.join(BIN, "mla-leaderboard"), *args],
            cwd=REPO,
            env=subprocess_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    board = start(logs[0])
    second = os.path.join(trial_dir, "trial001", "seed1001", "cell.json")
    end = time.time() + 600
    while not os.path.exists(second):
        assert board.poll() is None, "the leaderboard ended before trial 1"
        assert time.time() < end, "timed out waiting for trial 1"
        time.sleep(0.05)
    os.killpg(board.pid, signal.SIGKILL)
    board.wait()
    first_metrics = os.path.join(trial_dir, "trial000", "seed1001", "metrics.json")
    mtime = os.stat(first_metrics).st_mtime_ns
    url = search_space.storage_url(None, out)
    states = [
        t.state for t in optuna.load_study(study_name="synthetic/concat/eta0", storage=url).trials
    ]
    assert states == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING]

    board = start(logs[1])
    assert board.wait(timeout=600) == 0, open(logs[1].name).read()[-3000:]
    log = open(logs[1].name).read()
    assert "trial 1 taken over" in log
    assert os.stat(first_metrics).st_mtime_ns == mtime
    assert open(os.path.join(os.path.dirname(first_metrics), "run.log")).read().count("\n$ ") == 1
    resumed = optuna.load_study(study_name="synthetic/concat/eta0", storage=url).trials
    assert [t.state for t in resumed] == [optuna.trial.TrialState.COMPLETE] * 2

    # the same study, uninterrupted, on a fresh storage: same trials, same values
    cells = plan(["synthetic"], ["concat"], [1], [0.0], out, overrides=TINY)
    ref_out = str(tmp_path / "ref")
    tuner = tuning.Tuner(
        cells, 2, ref_out, None, search_space.load_space(str(space_path)), ReplayRunner(out), print
    )
    selection = tuner.run()
    ref = optuna.load_study(
        study_name="synthetic/concat/eta0", storage=search_space.storage_url(None, ref_out)
    )
    assert [(t.params, t.value) for t in ref.trials] == [(t.params, t.value) for t in resumed]
    assert selection["studies"] == tuning.load_selection(out)["studies"]
    # the final run used the selected parameters, and the report shows them
    final = json.load(
        open(glob.glob(os.path.join(out, "runs", "*", "*", "*", "*", "cell.json"))[0])
    )
    assert (
        final["identity"]["overrides"][-2:]
        == selection["studies"]["synthetic/concat/eta0"]["overrides"]
    )
    assert "Selected hyper-parameters" in open(os.path.join(out, "leaderboard.md")).read()
    # the same command again: nothing runs, the tuned cells are recognised as finished
    capsys.readouterr()
    assert cli.main(args) == 0
    err = capsys.readouterr().err
    assert "1 of 1 runs already finished" in err and "tuning round" not in err
