"""The leaderboard (``mla-leaderboard``): real ``mmf_run`` cells on synthetic data, resume,
failure reporting, the tables' marks, the tidy CSV, the modality gap, and the HTML report
opened in a real headless Chromium (installed with apt-get when missing)."""

import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd
import pytest

from mla_plugin.leaderboard import cli, reports
from mla_plugin.leaderboard.methods import ABLATION
from mla_plugin.leaderboard.plan import parse_seeds, plan
from mla_plugin.leaderboard.reports import render
from tests.support import BIN, REPO, apt_lock, run_cli, subprocess_env

TINY = [
    "training.max_epochs=1",
    "dataset_config.synthetic.sizes.train=512",
    "dataset_config.synthetic.sizes.val=256",
    "dataset_config.synthetic.sizes.test=256",
]


# ----------------------------------------------------------------- hand-made
def test_mark_best_bold_and_underline_on_a_hand_made_table():
    means = pd.DataFrame(
        [
            [50.0, 70.0, 60.0, np.nan],  # plain order
            [80.0, 80.0, 75.0, 10.0],  # a tie for best: both bold
            [33.333, 33.334, 20.0, 1.0],  # equal as displayed (2 decimals)
            [np.nan, 42.0, np.nan, np.nan],
        ],  # a single value: no marks
        columns=list("ABCD"),
    )
    marks = reports.mark_best(means)
    assert marks.iloc[0].tolist() == ["", "best", "second", ""]
    assert marks.iloc[1].tolist() == ["best", "best", "second", ""]
    assert marks.iloc[2].tolist() == ["best", "best", "second", ""]
    assert marks.iloc[3].tolist() == ["", "", "", ""]

    stds = pd.DataFrame(1.0, index=means.index, columns=means.columns)
    table = reports.Table("t", means, stds, stds)
    md = reports.to_markdown(table)
    assert "| **70.00 ± 1.00** | <ins>60.00 ± 1.00</ins> | – |" in md
    page = render.table_html(table)
    assert '<td class="best"><b>70.00 ± 1.00</b></td>' in page
    assert '<td class="second"><u>60.00 ± 1.00</u></td>' in page
    # Table 2 ranks within a column (each missing rate)
    by_column = reports.Table("t2", means, stds, stds, mark_axis=0)
    assert by_column.marks["A"].tolist() == ["second", "best", "", ""]


def test_cells_at_chance_are_never_best_and_are_marked():
    means = pd.DataFrame(
        [
            [27.93, 27.93, 27.93, 27.93],  # every method at the majority class
            [27.93, 40.0, 28.2, 35.0],  # one at chance, one within the tolerance
            [20.0, 30.0, np.nan, 50.0],  # below chance counts as at chance
            [50.0, 70.0, 60.0, np.nan],  # chance unknown (old runs): ranked as before
        ],
        columns=list("ABCD"),
    )
    chance = pd.DataFrame(27.93, index=means.index, columns=means.columns)
    chance.iloc[3] = np.nan
    marks = reports.mark_best(means, chance=chance)
    assert marks.iloc[0].tolist() == ["chance"] * 4
    assert marks.iloc[1].tolist() == ["chance", "best", "chance", "second"]
    assert marks.iloc[2].tolist() == ["chance", "second", "", "best"]
    assert marks.iloc[3].tolist() == reports.mark_best(means).iloc[3].tolist()
    # the ranking of the cells above chance is the ranking without chance
    assert 28.2 - 27.93 <= reports.CHANCE_TOLERANCE < 35.0 - 27.93

    stds = pd.DataFrame(0.0, index=means.index, columns=means.columns)
    table = reports.Table("t", means, stds, stds, chance=chance)
    md = reports.to_markdown(table)
    assert "| 27.93 ± 0.00 † | 27.93 ± 0.00 † | 27.93 ± 0.00 † | 27.93 ± 0.00 † |" in md
    assert "**27.93" not in md and "<ins>27.93" not in md
    assert "| 27.93 ± 0.00 † | **40.00 ± 0.00** | 28.20 ± 0.00 † | <ins>35.00 ± 0.00</ins> |" in md
    legend = f"{reports.CHANCE_MARK} at chance: the mean is not above the majority-class rate"
    assert f"_{legend}" in md and "Majority-class rate: A 27.93; B 27.93" in md
    page = render.table_html(table)
    assert '<td class="chance">27.93 ± 0.00 †</td>' in page
    assert '<td class="best"><b>40.00 ± 0.00</b></td>' in page
    assert f'<p class="note chance">{legend}' in page
    # a table without chance rates has no legend
    assert reports.CHANCE_MARK not in reports.to_markdown(reports.Table("t", means, stds, stds))


def test_plan_seeds_and_ablation_cells(tmp_path):
    assert parse_seeds([3]) == [1, 2, 3] and parse_seeds(["4,7"]) == [4, 7]
    cells = plan(
        ["synthetic"],
        ["concat", "mla"],
        [1, 2],
        [0.0, 0.5],
        str(tmp_path),
        ablation=True,
        overrides=["model_config.{method}.missing_fill=zeros"],
        root=REPO,
    )
    # (concat, mla, 3 extra MLA variants; the HGM-on DF-on corner is the mla cell) × 2 rates × 2 seeds
    assert len(cells) == 5 * 2 * 2 == len({c.save_dir for c in cells})
    cell = next(c for c in cells if c.variant == ABLATION[(False, False)] and c.missing_rate == 0.5)
    assert cell.save_dir == str(tmp_path / "runs/synthetic/mla[fusion-mean,hgm-off]/eta0.5/seed1")
    cmd = cell.command("mmf_run")
    assert {
        "model=mla",
        "training.seed=1",
        "dataset_config.synthetic.missing_rate=0.5",
        "model_config.mla.hgm=off",
        "model_config.mla.fusion=mean",
        "checkpoint.resume=True",
        "model_config.mla.missing_fill=zeros",
        f"env.save_dir={cell.save_dir}",
    } <= set(cmd)
    with pytest.raises(FileNotFoundError, match="no experiment config"):
        plan(["nosuchdata"], ["mla"], [1], [0.0], str(tmp_path), root=REPO)


def test_settings_from_a_yaml_file_and_the_command_line(tmp_path, monkeypatch, capsys):
    spec = tmp_path / "lb.yaml"
    spec.write_text(
        "leaderboard:\n  datasets: [synthetic]\n  methods: [mla, qmf]\n  seeds: [5, 6]\n"
        "  jobs: 2\n  overrides: {training: {max_epochs: 4}}\n"
    )
    s = cli.resolve_settings(["--config", str(spec), "--jobs", "1", "--set", "a.b=1", "--", "c=2"])
    assert s.methods == ["mla", "qmf"] and s.seeds == [5, 6] and s.jobs == 1
    assert s.overrides == ["training.max_epochs=4", "a.b=1", "c=2"]
    assert cli.resolve_settings([]).methods == [
        "sum",
        "concat",
        "mla_late_fusion",
        "film",
        "bigated",
        "ogm_ge",
        "qmf",
        "mla",
    ]
    monkeypatch.chdir(REPO)
    assert cli.main(["--datasets", "nosuchdata", "--out", str(tmp_path / "x")]) == 2
    assert "no experiment config for dataset 'nosuchdata'" in capsys.readouterr().err


def test_yaml_settings_with_hyphenated_keys(tmp_path, capsys):
    spec = tmp_path / "lb.yaml"
    spec.write_text("gap-methods: none\nmissing-rates: [0, 0.5]\n")
    s = cli.resolve_settings(["--config", str(spec)])
    assert s.gap_methods == [] and s.missing_rates == [0.0, 0.5]
    spec.write_text("gap-metods: none\n")
    with pytest.raises(SystemExit) as exc:  # a usage error: exit 2, the key named
        cli.resolve_settings(["--config", str(spec)])
    assert exc.value.code == 2 and "gap_metods" in capsys.readouterr().err


@pytest.mark.parametrize("dry_run", [[], ["--dry-run"]])
def test_missing_mmf_run_is_a_usage_error(tmp_path, monkeypatch, capsys, dry_run):
    # the real lookup, in a world without mmf_run: no launcher set, none next to this
    # Python (a bare folder stands in for its bin/), none on PATH
    bare = tmp_path / "bare_bin"
    bare.mkdir()
    monkeypatch.delenv("MLA_LEADERBOARD_MMF_RUN", raising=False)
    monkeypatch.setattr(sys, "executable", str(bare / "python"))
    monkeypatch.setenv("PATH", str(bare))
    monkeypatch.chdir(REPO)
    assert cli.main(["--datasets", "synthetic", "--out", str(tmp_path / "x"), *dry_run]) == 2
    assert "mla-leaderboard: mmf_run not found" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


# ------------------------------------------------ fake mmf_run: resume, failures
FAKE_MMF_RUN = r"""
import json, os, sys
args = dict(a.split("=", 1) for a in sys.argv[1:])
save = args["env.save_dir"]
with open(os.environ["FAKE_CALLS"], "a") as f:
    f.write(save + "\n")
if os.environ.get("FAKE_FAIL") and os.environ["FAKE_FAIL"] in save:
    print("Traceback: boom, a fake failure")
    sys.exit(3)
method, seed = args["model"], int(args["training.seed"])
rate = float(args.get("dataset_config.synthetic.missing_rate", 0))
base = {"concat": 0.6, "mla": 0.8}[method] - 0.3 * rate + 0.01 * seed
if args.get("model_config.mla.hgm") == "off":
    base -= 0.1
strong, weak = base + 0.05, (0.2 if method == "concat" else 0.5)
multi = base - (0.03 if args.get("model_config.mla.fusion") == "mean" else 0)
acc = {"multi": multi, "strong": strong, "weak": weak}
majority = {"class": 0, "samples": 100, "rate": {"multi": 0.5, "strong": 0.5, "weak": 0.5}}
os.makedirs(save, exist_ok=True)
json.dump({"method": method, "dataset": "synthetic", "seed": seed, "selection": "val",
           "selected_epoch": 2, "selected_update": 20, "modalities": ["strong", "weak"],
           "world_size": 1, "ranks_in_sync": True, "val": acc, "test": acc,
           "majority": {"val": majority, "test": majority}},
          open(os.path.join(save, "metrics.json"), "w"))
json.dump({"gap": 0.5 if method == "mla" else 0.9, "pairs": {"strong|weak": 0.5}, "split": "test"},
          open(os.path.join(save, "gap.json"), "w"))
"""


@pytest.fixture(scope="module")
def fake_board(tmp_path_factory):
    """A leaderboard of 20 cells (2 methods + ablation, 2 missing rates, 2 seeds) run by a
    fake mmf_run that writes made-up metrics in milliseconds."""
    tmp = tmp_path_factory.mktemp("fake")
    script = tmp / "fake_mmf_run"
    script.write_text(f"#!{sys.executable}\n" + FAKE_MMF_RUN)
    script.chmod(0o755)
    calls = tmp / "calls.txt"
    out = tmp / "board"
    argv = [
        "--datasets",
        "synthetic",
        "--references",
        "none",
        "--methods",
        "concat",
        "mla",
        "--seeds",
        "2",
        "--ablation",
        "--missing-rates",
        "0",
        "0.5",
        "--jobs",
        "2",
        "--gap-methods",
        "none",
        "--no-progress",
        "--out",
        str(out),
    ]
    return {"script": str(script), "calls": calls, "out": out, "argv": argv}


def _run_fake(board, monkeypatch, fail=None):
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("MLA_LEADERBOARD_MMF_RUN", board["script"])
    monkeypatch.setenv("FAKE_CALLS", str(board["calls"]))
    if fail:
        monkeypatch.setenv("FAKE_FAIL", fail)
    else:
        monkeypatch.delenv("FAKE_FAIL", raising=False)
    before = len(board["calls"].read_text().splitlines()) if board["calls"].exists() else 0
    code = cli.main(board["argv"])
    return code, len(board["calls"].read_text().splitlines()) - before


@pytest.mark.subprocess
def test_resume_runs_only_unfinished_cells_and_failures_do_not_stop_the_rest(
    fake_board, monkeypatch, capsys
):
    code, calls = _run_fake(fake_board, monkeypatch, fail="concat/eta0.5/seed2")
    err = capsys.readouterr().err
    assert code == 1 and calls == 20
    assert "FAILED synthetic/concat/eta0.5/seed2 (exit 3" in err and "boom, a fake failure" in err
    runs = fake_board["out"] / "runs"
    assert len(list(runs.glob("*/*/*/*/metrics.json"))) == 19
    assert (
        "concat/eta0.5/seed2" in (fake_board["out"] / "leaderboard.md").read_text()
    )  # listed as failed

    code, calls = _run_fake(fake_board, monkeypatch)  # resume: only the failed cell
    assert code == 0 and calls == 1
    code, calls = _run_fake(fake_board, monkeypatch)  # all finished: nothing runs
    assert code == 0 and calls == 0
    assert "20 of 20 runs already finished" in capsys.readouterr().err
    (runs / "synthetic/mla[hgm-off]/eta0/seed1/metrics.json").unlink()
    code, calls = _run_fake(fake_board, monkeypatch)
    assert code == 0 and calls == 1


@pytest.mark.subprocess
def test_reports_from_fake_runs_have_every_table(fake_board, monkeypatch):
    if not (fake_board["out"] / "index.html").exists():
        _run_fake(fake_board, monkeypatch)
    built = reports.build(str(fake_board["out"]))
    t1 = built["table1"]
    assert list(t1.means.columns) == ["Concat", "MLA"]
    assert [k[1] for k in t1.means.index] == ["Strong", "Weak", "Multi"]
    assert t1.means.loc[("synthetic", "Multi"), "MLA"] == pytest.approx(81.5)  # seeds 1, 2
    assert t1.stds.loc[("synthetic", "Multi"), "MLA"] == pytest.approx(np.std([81, 82], ddof=1))
    assert t1.marks.loc[("synthetic", "Multi")].tolist() == ["second", "best"]
    # Weak: concat 20-21 %, MLA 50 %, against a majority-class rate of 50 %
    assert t1.chance.loc[("synthetic", "Weak")].tolist() == pytest.approx([50.0, 50.0])
    assert t1.marks.loc[("synthetic", "Weak")].tolist() == ["chance", "chance"]
    (t2,) = built["table2"]
    assert list(t2.means.columns) == ["η=0%", "η=50%"]
    assert t2.means.loc["MLA", "η=50%"] == pytest.approx(66.5)
    t3 = built["table3"]
    assert list(t3.means.columns) == ["HGM✗ DF✗", "HGM✗ DF✓", "HGM✓ DF✗", "HGM✓ DF✓ (MLA)"]
    assert t3.means.loc[("synthetic", "Multi")].tolist() == pytest.approx([68.5, 71.5, 78.5, 81.5])
    assert built["gap"].means.loc["synthetic", "MLA"] == pytest.approx(0.5)
    md = (fake_board["out"] / "leaderboard.md").read_text()
    for title in ("Table 1", "Table 2", "Table 3", "Modality gap", "Protocol"):
        assert title in md
    page = (fake_board["out"] / "index.html").read_text()
    for title in ("Table 1", "Table 2", "Table 3", "Modality gap", "Protocol"):
        assert title in page
    # self-contained and script-free: inline CSS, every plot a base64 PNG, text escaped
    assert "<script" not in page and "<link" not in page and "<style>" in page
    assert page.count("<img ") == page.count('src="data:image/png;base64,') == 4
    assert "model_config.mla.hgm owm | off" in page and "<caption>Table 3: ablation" in page
    assert '<td class="chance">' in page and "Majority-class rate: synthetic 50.00" in page
    assert "Majority-class rate: synthetic 50.00" in md
    # the fake runs keep no test predictions: said, not guessed; one dataset: no ranks
    assert "No paired test (runs without test predictions): Concat, MLA." in md
    assert (
        "needs two or more datasets; this leaderboard has 1." in md and "Which differences" in page
    )
    csv = pd.read_csv(fake_board["out"] / "leaderboard.csv")
    assert (csv["chance"] == 0.5).all()


@pytest.mark.subprocess
def test_console_prints_every_table(fake_board, monkeypatch, capsys):
    if not (fake_board["out"] / "index.html").exists():
        _run_fake(fake_board, monkeypatch)
    capsys.readouterr()
    assert cli.main(["--report-only", "--out", str(fake_board["out"])]) == 0
    out = capsys.readouterr().out
    built = reports.build(str(fake_board["out"]))
    printed = [built["table1"], *built["table2"], built["table3"], built["gap"]]
    assert len(built["table2"]) == 1 and all(t is not None for t in printed)
    for table in printed:
        assert reports.to_markdown(table) in out
    assert [line for line in out.splitlines() if line.startswith("### ")] == [
        f"### {t.title}" for t in printed
    ]


@pytest.mark.subprocess
def test_plots_start_their_axes_at_zero(fake_board, monkeypatch):
    from mla_plugin.leaderboard.reports import plots

    if not (fake_board["out"] / "index.html").exists():
        _run_fake(fake_board, monkeypatch)
    built = reports.build(str(fake_board["out"]))
    monkeypatch.setattr(plots, "_png", lambda fig: fig)  # the figure, not its PNG
    figures = {
        "bars": plots.bar_chart(built["table1"]),
        "laziness": plots.laziness_chart(built["table1"], "synthetic"),
        "missing": plots.missing_rate_plot(built["table2"][0]),
        "gap": plots.gap_plot(built["gap"]),
    }
    for name, fig in figures.items():
        for ax in fig.axes:
            if ax.axison:
                assert ax.get_ylim()[0] == 0, name
    for name in ("bars", "laziness", "missing"):  # chance: the dashed line at 50 %
        chance = [ln for ln in figures[name].axes[0].lines if ln.get_label() == "chance"]
        assert len(chance) == 1 and chance[0].get_ydata()[0] == pytest.approx(50.0), name
    # the bar chart's Multi bars (61-82 %) used to start the axis at 51 %
    assert figures["bars"].axes[0].get_ylim()[1] <= 100


# ------------------------------------------------------------- real runs
@pytest.fixture(scope="module")
def real_board(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("real") / "board")
    args = [
        "--datasets",
        "synthetic",
        "--references",
        "none",
        "--methods",
        "concat",
        "mla",
        "--seeds",
        "2",
        "--jobs",
        "2",
        "--gap-methods",
        "concat",
        "--no-progress",
        "--out",
        out,
        "--",
        *TINY,
    ]
    proc = run_cli("mla-leaderboard", args, timeout=600)
    return {"out": out, "args": args, "proc": proc}


@pytest.mark.subprocess
@pytest.mark.slow
def test_real_leaderboard_writes_reports_and_a_tidy_csv(real_board):
    out, proc = real_board["out"], real_board["proc"]
    for name in ("leaderboard.md", "leaderboard.csv", "modality_gap.csv", "index.html"):
        assert os.path.getsize(os.path.join(out, name)) > 0
    assert "### Table 1" in proc.stdout and "| synthetic | Multi |" in proc.stdout
    csv = pd.read_csv(os.path.join(out, "leaderboard.csv"))
    assert list(csv.columns) == reports.CSV_COLUMNS
    # 2 methods × 2 seeds × 2 splits × (multi + 2 modalities), one row each
    assert len(csv) == 24
    key = ["dataset", "variant", "seed", "missing_rate", "split", "modality"]
    assert not csv.duplicated(key).any()
    assert set(csv["modality"]) == {"multi", "strong", "weak"} and set(csv["split"]) == {
        "val",
        "test",
    }
    assert csv["accuracy"].between(0, 1).all() and (csv["selected_epoch"] == 1).all()
    metrics = json.load(open(os.path.join(out, "runs/synthetic/mla/eta0/seed2/metrics.json")))
    row = csv[
        (csv.variant == "mla") & (csv.seed == 2) & (csv.split == "test") & (csv.modality == "weak")
    ]
    assert row["accuracy"].item() == pytest.approx(metrics["test"]["weak"])
    gaps = pd.read_csv(os.path.join(out, "modality_gap.csv"))
    assert sorted(gaps["method"]) == ["concat", "concat"] and gaps["gap"].between(0, 2).all()
    md = open(os.path.join(out, "leaderboard.md")).read()
    assert "epochs: 1" in md and "torch" in md and "mmf" in md


@pytest.mark.subprocess
@pytest.mark.slow
def test_real_leaderboard_resumes_without_rerunning(real_board):
    out = real_board["out"]
    files = sorted(
        p for p in os.popen(f"find {out}/runs -name metrics.json -o -name gap.json").read().split()
    )
    assert len(files) == 6
    mtimes = [os.stat(p).st_mtime_ns for p in files]
    proc = run_cli("mla-leaderboard", real_board["args"], timeout=300)
    assert "4 of 4 runs already finished" in proc.stderr
    assert [os.stat(p).st_mtime_ns for p in files] == mtimes


# ------------------------------------------------------- killed and restarted
def _alive(pid):
    """A running process (a killed child that nobody reaped is a zombie, not alive)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _wait_until_group_gone(pgid, timeout=60):
    """Wait until no live (non-zombie) process of the process group is left: a SIGKILLed
    process takes a moment to die, and until then its lock file names a live pid."""
    end = time.time() + timeout
    while True:
        alive = []
        for stat in glob.glob("/proc/[0-9]*/stat"):
            try:
                with open(stat) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if fields[0] != "Z" and int(fields[2]) == pgid:
                alive.append(stat)
        if not alive:
            return
        assert time.time() < end, f"processes of group {pgid} still alive: {alive}"
        time.sleep(0.05)


def _lock_holders(out, leaderboard=None):
    """{cell dir: pid} of unfinished cells whose mmf_run is alive (pid from the lock file;
    the ``leaderboard``'s own pid, written while it locks a cell before starting its run,
    does not count)."""
    holders = {}
    for lock in glob.glob(os.path.join(out, "runs/*/*/*/*/.lock")):
        cell = os.path.dirname(lock)
        pid = open(lock).read().strip()
        if pid and not os.path.exists(os.path.join(cell, "metrics.json")) and _alive(int(pid)):
            if leaderboard is not None and int(pid) == leaderboard:
                continue
            holders[cell] = int(pid)
    return holders


def _wait_for(condition, proc, what, timeout=240):
    end = time.time() + timeout
    while not condition():
        assert proc.poll() is None, f"the leaderboard ended before {what}"
        assert time.time() < end, f"timed out waiting for {what}"
        time.sleep(0.05)


def _start_board(args, log):
    return subprocess.Popen(
        [os.path.join(BIN, "mla-leaderboard"), *args],
        cwd=REPO,
        env=subprocess_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _assert_reports_whole(out):
    """Every report present is complete and of one build (the set the ``.reports/current``
    symlink names, resolved once): no torn file, no temporary file left."""
    md = os.path.join(out, "leaderboard.md")
    if os.path.exists(md):
        build = os.path.dirname(os.path.realpath(md))
        assert (
            open(os.path.join(build, "leaderboard.md"))
            .read()
            .rstrip()
            .splitlines()[-1]
            .startswith("**Software**")
        )
        csv = pd.read_csv(os.path.join(build, "leaderboard.csv"))
        assert list(csv.columns) == reports.CSV_COLUMNS
        assert open(os.path.join(build, "index.html")).read().endswith("</html>\n")


def _runs_logged(out):
    """{cell dir: how many times the leaderboard started its mmf_run} (the commands it logs,
    less the cell's modality-gap step)"""
    return {
        os.path.dirname(p): open(p).read().count("\n$ ")
        - open(p).read().count("-m mla_plugin.analysis.gap ")
        for p in glob.glob(os.path.join(out, "runs/*/*/*/*/run.log"))
    }


def _comparable(out):
    csv = pd.read_csv(os.path.join(out, "leaderboard.csv"))
    csv["run_dir"] = [os.path.relpath(d, out) if os.path.isabs(d) else d for d in csv["run_dir"]]
    gaps = pd.read_csv(os.path.join(out, "modality_gap.csv"))
    gaps = gaps[[c for c in gaps.columns if c not in ("run_dir",)]]
    md = open(os.path.join(out, "leaderboard.md")).read()
    md = re.sub(r"generated [0-9: -]+\.", "generated <time>.", md)
    md = re.sub(r"[0-9.]+ min of run time", "<minutes> of run time", md)
    return csv, gaps, md


@pytest.mark.subprocess
@pytest.mark.slow
def test_killed_leaderboard_restarts_without_redoing_runs(real_board, tmp_path):
    """SIGKILL the whole leaderboard (its runs die too), restart it, SIGKILL only the
    leaderboard (its run goes on), restart it again: finished runs are never redone, no
    report is ever torn, and the final reports equal the uninterrupted ``real_board``'s."""
    out = str(tmp_path / "board")
    args = list(real_board["args"])
    args[args.index("--out") + 1] = out
    # a process per cell, so that a cell's run can outlive its killed leaderboard (step 2);
    # warm workers' crash isolation is tests/leaderboard/test_warm_workers.py's
    args.insert(args.index("--out"), "--no-warm-workers")
    logs = [open(tmp_path / f"board{k}.log", "w+") for k in range(3)]

    def finished():
        return sorted(glob.glob(os.path.join(out, "runs/*/*/*/*/metrics.json")))

    # 1. kill everything once a report of the first finished run is written and another
    # run is under way
    board = _start_board(args, logs[0])
    md = os.path.join(out, "leaderboard.md")
    _wait_for(lambda: os.path.exists(md) and _lock_holders(out), board, "a report and a second run")
    os.killpg(board.pid, signal.SIGKILL)
    board.wait()
    _wait_until_group_gone(board.pid)  # else a dying run still looks like a lock holder
    first = finished()
    assert 1 <= len(first) < 4
    mtimes = {p: os.stat(p).st_mtime_ns for p in first}
    _assert_reports_whole(out)

    # 2. restart; once it runs a cell, kill only the leaderboard: the mmf_run goes on
    board = _start_board(args, logs[1])
    _wait_for(lambda: _lock_holders(out, board.pid), board, "a restarted run")
    os.kill(board.pid, signal.SIGKILL)
    board.wait()
    orphans = _lock_holders(out)
    assert orphans, "the run should outlive the killed leaderboard"
    for pid in orphans.values():  # paused, so that it is surely still running below
        os.kill(pid, signal.SIGSTOP)
    started = _runs_logged(out)

    # 3. restart while the orphaned run still works: it waits for it instead of redoing it
    board = _start_board(args, logs[2])

    def log_text():
        logs[2].seek(0)
        return logs[2].read()

    _wait_for(lambda: "waiting for" in log_text(), board, "the restarted leaderboard to wait")
    for pid in orphans.values():
        os.kill(pid, signal.SIGCONT)
    assert board.wait(timeout=600) == 0
    assert "runs already finished" in log_text()
    now = _runs_logged(out)
    for cell in orphans:
        assert now[cell] == started[cell], f"{cell} was started again while its first run went on"
    for p in first:
        assert now[os.path.dirname(p)] == 1 and os.stat(p).st_mtime_ns == mtimes[p]
    assert not any(_alive(pid) for pid in orphans.values())
    assert glob.glob(os.path.join(out, "**", ".tmp-*"), recursive=True) == []
    _assert_reports_whole(out)

    csv, gaps, md = _comparable(out)
    ref_csv, ref_gaps, ref_md = _comparable(real_board["out"])
    pd.testing.assert_frame_equal(csv, ref_csv)
    pd.testing.assert_frame_equal(gaps, ref_gaps)
    assert md == ref_md


# ------------------------------------------------------------- the browser
def _install_chromium():
    if os.geteuid() == 0:
        prefix = []
    elif shutil.which("sudo"):
        prefix = ["sudo", "-n"]
    else:
        pytest.fail("chromium is missing and cannot be installed (not root, no sudo)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    with apt_lock():  # another test process may be installing SLURM, or Chromium too
        if shutil.which("chromium"):
            return
        for cmd in (
            ["apt-get", "update"],
            ["apt-get", "install", "-y", "--no-install-recommends", "chromium"],
        ):
            proc = subprocess.run(
                prefix + cmd, capture_output=True, text=True, env=env, timeout=900
            )
            if proc.returncode:
                pytest.fail(
                    f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
                )


@pytest.fixture(scope="session")
def chromium():
    """Debian's Chromium, installed with apt-get when missing."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        _install_chromium()
        found = shutil.which("chromium")
    assert found, "chromium not found after installing it"
    return found


# The browser's report on the page: set on <html> once it has loaded (the shipped page
# carries no script; the test injects this one into a copy of it).
PROBE = """<script>
(function(){
  var root=document.documentElement; root.setAttribute('data-js-errors','0');
  window.addEventListener('error',function(){root.setAttribute('data-js-errors',
    String(parseInt(root.getAttribute('data-js-errors'))+1));},true);
  window.addEventListener('load',function(){
    var imgs=document.querySelectorAll('img.plot'), ok=0;
    for(var i=0;i<imgs.length;i++){if(imgs[i].complete&&imgs[i].naturalWidth>0)ok++;}
    root.setAttribute('data-plots',String(imgs.length)); root.setAttribute('data-plots-ok',String(ok));
    root.setAttribute('data-tables',String(document.querySelectorAll('table.leaderboard').length));
    root.setAttribute('data-loaded','1');
  });
})();
</script>
"""


def _open_in_chromium(chromium, path):
    """--dump-dom of the page, with :data:`PROBE` injected, after its load event; returns
    (dom, console lines)."""
    source = open(path, encoding="utf-8").read()
    assert source.count("</head>") == 1
    with tempfile.TemporaryDirectory() as tmp:
        probed = os.path.join(tmp, "index.html")
        with open(probed, "w", encoding="utf-8") as f:
            f.write(source.replace("</head>", PROBE + "</head>"))
        profile = os.path.join(tmp, "profile")
        proc = subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--enable-logging=stderr",
                "--v=0",
                "--dump-dom",
                "file://" + probed,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert proc.returncode == 0, proc.stderr[-3000:]
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    return proc.stdout, console


def _check_page(chromium, path, min_plots):
    source = open(path, encoding="utf-8").read()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", source), "external resource"
    assert "<link" not in source and "<script" not in source  # self-contained, no test-only script
    n_img = len(re.findall(r'<img class="plot"', source))
    assert n_img >= min_plots
    assert len(re.findall(r'src="data:image/png;base64,', source)) == n_img
    dom, console = _open_in_chromium(chromium, path)
    assert not console, f"console messages: {console}"
    html_tag = re.search(r"<html[^>]*>", dom).group(0)
    attrs = dict(re.findall(r'(data-[\w-]+)="([^"]*)"', html_tag))
    assert attrs.get("data-loaded") == "1", html_tag
    assert attrs["data-js-errors"] == "0"
    assert attrs["data-plots"] == attrs["data-plots-ok"] == str(n_img)  # every plot decoded
    assert int(attrs["data-tables"]) >= 1 and '<table class="leaderboard">' in dom
    assert "Protocol" in dom and "torch" in dom
    return dom


@pytest.mark.browser
@pytest.mark.subprocess
@pytest.mark.slow
def test_html_report_of_real_runs_in_headless_chromium(chromium, real_board):
    # bar chart, laziness chart, modality gap plot
    dom = _check_page(chromium, os.path.join(real_board["out"], "index.html"), min_plots=3)
    assert "Table 1" in dom and "Modality gap" in dom


@pytest.mark.browser
@pytest.mark.subprocess
def test_html_report_with_missing_rates_and_ablation_in_headless_chromium(
    chromium, fake_board, monkeypatch
):
    if not (fake_board["out"] / "index.html").exists():
        _run_fake(fake_board, monkeypatch)
    reports.build(str(fake_board["out"]))
    # bar chart, laziness chart, missing-rate line plot, modality gap plot
    dom = _check_page(chromium, str(fake_board["out"] / "index.html"), min_plots=4)
    for title in ("Table 1", "Table 2", "Table 3", 'data-plot="missing"', 'data-plot="gap"'):
        assert title in dom
