"""Table 2 with every missing-modality method (``--methods table2``) and Figure 2
(``--train-mask``), from a fake ``mmf_run`` that writes made-up metrics in milliseconds
(the Table-2 models need not exist for the leaderboard's side of them)."""

import json
import os
import re
import sys

import pytest

from mla_plugin.leaderboard import cli, reports
from mla_plugin.leaderboard.cells import parse_setting, setting_name
from mla_plugin.leaderboard.methods import METHOD_LABELS, TABLE2_METHODS
from mla_plugin.leaderboard.plan import parse_train_mask, plan
from mla_plugin.leaderboard.reports import plots
from tests.support import REPO

# Made-up test accuracies: Multi = 0.9 - 0.3 η - 0.01 k (k: the method's place in Table 2's
# list) + 0.001 seed; with a training mask "m:r", m's own accuracy drops by 0.4 r, and for
# QMF (joint training) the other modality's by 0.2 r too (what Figure 2 shows), for MLA not.
FAKE_ACCURACY = r"""
def accuracy(method, seed, eta, mask, order):
    acc = {"multi": 0.9 - 0.3 * eta - 0.01 * order.index(method) + 0.001 * seed,
           "strong": 0.8, "weak": 0.6}
    if mask:
        masked, ratio = mask.split(":")
        for m in ("strong", "weak"):
            if m == masked:
                acc[m] -= 0.4 * float(ratio)
            elif method != "mla":
                acc[m] -= 0.2 * float(ratio)
    return acc


def write_metrics(save, method, seed, acc):
    import json, os
    majority = {"class": 0, "samples": 100, "rate": {m: 0.1 for m in acc}}
    os.makedirs(save, exist_ok=True)
    json.dump({"method": method, "dataset": "synthetic", "seed": seed, "selection": "val",
               "selected_epoch": 2, "modalities": ["strong", "weak"], "val": acc, "test": acc,
               "majority": {"val": majority, "test": majority}},
              open(os.path.join(save, "metrics.json"), "w"))
"""
FAKE_MMF_RUN = (
    FAKE_ACCURACY
    + r"""
import json, os, sys
args = dict(a.split("=", 1) for a in sys.argv[1:])
method, seed = args["model"], int(args["training.seed"])
eta = float(args.get("dataset_config.synthetic.missing_rate", 0))
acc = accuracy(method, seed, eta, args.get("dataset_config.synthetic.train_mask"),
               json.loads(os.environ["FAKE_ORDER"]))
write_metrics(args["env.save_dir"], method, seed, acc)
"""
)
FAKE = {}
exec(FAKE_ACCURACY, FAKE)


def write_runs(out, methods, seeds, rates=(0.0,), masks=(None,)):
    """Finished runs as a leaderboard leaves them (metrics.json and cell.json in
    ``runs/synthetic/<method>/<setting>/seed<s>/``), without running anything."""

    for method in methods:
        for rate in rates:
            for mask in masks:
                for seed in seeds:
                    save = os.path.join(
                        out, "runs", "synthetic", method, setting_name(rate, mask), f"seed{seed}"
                    )
                    text = f"{mask[0]}:{mask[1]:g}" if mask else None
                    acc = FAKE["accuracy"](method, seed, rate, text, TABLE2_METHODS)
                    FAKE["write_metrics"](save, method, seed, acc)
                    cell = {"dataset": "synthetic", "variant": method, "missing_rate": rate,
                            "train_mask": list(mask) if mask else None, "ok": True}  # fmt: skip
                    with open(os.path.join(save, "cell.json"), "w") as f:
                        json.dump(cell, f)


@pytest.fixture
def fake_run(tmp_path, monkeypatch):
    script = tmp_path / "fake_mmf_run"
    script.write_text(f"#!{sys.executable}\n" + FAKE_MMF_RUN)
    script.chmod(0o755)
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("MLA_LEADERBOARD_MMF_RUN", str(script))
    monkeypatch.setenv("FAKE_ORDER", json.dumps(TABLE2_METHODS))

    def run(*argv):
        out = str(tmp_path / "board")
        base = ["--datasets", "synthetic", "--gap-methods", "none", "--no-progress"]
        base += ["--references", "none"]
        return cli.main([*base, "--out", out, *argv]), out

    return run


def test_methods_table2_is_the_papers_list():
    settings = cli.resolve_settings(["--methods", "table2"])
    assert settings.methods == TABLE2_METHODS
    assert [METHOD_LABELS[m] for m in TABLE2_METHODS] == [
        "Late Fusion",
        "QMF",
        "CCA",
        "DCCA",
        "DCCAE",
        "AE",
        "CRA",
        "MMIN",
        "IF-MMIN",
        "CPM-Net",
        "TATE",
        "MLA",
    ]
    # a set and single names mix, without duplicates
    assert cli.resolve_settings(["--methods", "concat", "table2", "mla"]).methods == [
        "concat",
        *TABLE2_METHODS,
    ]


def test_table2_and_its_plot_have_every_method_in_the_papers_order(tmp_path, monkeypatch, capsys):
    out = str(tmp_path / "board")
    shuffled = ["mla", "tate", "cca", "qmf", "mla_late_fusion", "mmin", "if_mmin", "cpm_net"]
    write_runs(out, shuffled + ["dcca", "dccae", "ae", "cra"], [1, 2], rates=(0.1, 0.5))
    built = reports.build(out)
    (t2,) = built["table2"]
    labels = [METHOD_LABELS[m] for m in TABLE2_METHODS]
    assert list(t2.means.index) == labels
    assert list(t2.means.columns) == ["η=10%", "η=50%"]
    # CPM-Net (place 9): 90 - 15 - 9 + 0.15 (seeds 1, 2) at η = 0.5
    assert t2.means.loc["CPM-Net", "η=50%"] == pytest.approx(66.15)
    md = open(f"{out}/leaderboard.md").read()
    table = md.split("### Table 2")[1].split("###")[0]
    rows = [line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| ")]
    assert rows[1:] == labels  # after the header row
    monkeypatch.setattr(plots, "_png", lambda fig: fig)
    fig = plots.missing_rate_plot(t2)
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert [t for t in legend if t != "chance"] == labels
    page = open(f"{out}/index.html").read()
    assert page.index("<th>Late Fusion</th>") < page.index("<th>CCA</th>")
    assert page.index("<th>TATE</th>") < page.index("<th>MLA</th>")


def test_train_mask_values_and_folders(tmp_path):
    assert parse_train_mask("audio:0.5") == ("audio", 0.5)
    for bad, why in (("audio", "expected MODALITY:RATIO"), ("audio:x", "'x' is not a number"),
                     ("audio:1.5", "1.5 is not in"), (":0.5", "expected MODALITY:RATIO")):  # fmt: skip
        with pytest.raises(ValueError, match=re.escape(why)) as err:
            parse_train_mask(bad)
        assert repr(bad) in str(err.value)
    cells = plan(
        ["synthetic"], ["mla"], [1], [0.0], str(tmp_path), root=REPO,
        train_masks=[("weak", 0.0), ("weak", 0.5)],
    )  # fmt: skip
    assert [c.key for c in cells] == [
        "synthetic/mla/eta0-mask_weak0/seed1",
        "synthetic/mla/eta0-mask_weak0.5/seed1",
    ]
    assert cells[1].identity["train_mask"] == ["weak", 0.5]
    assert (
        "train_mask"
        not in plan(["synthetic"], ["mla"], [1], [0.0], str(tmp_path), root=REPO)[0].identity
    )  # a plain cell's identity is as before
    assert "dataset_config.synthetic.train_mask=weak:0.5" in cells[1].command("mmf_run")
    assert parse_setting("eta0.3-mask_weak0.5") == (0.3, ("weak", 0.5))
    assert parse_setting("eta0.3") == (0.3, None)
    with pytest.raises(ValueError, match="modality loud is not one of .*strong, weak"):
        plan(["synthetic"], ["mla"], [1], [0.0], str(tmp_path), root=REPO,
             train_masks=[("loud", 0.5)])  # fmt: skip


@pytest.mark.parametrize("value", ["weak", "weak:2", "weak:half"])
def test_bad_train_mask_is_a_usage_error_naming_it(value, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.resolve_settings(["--train-mask", "weak:0.5", value])
    assert exc.value.code == 2
    assert f"--train-mask {value!r}" in capsys.readouterr().err


@pytest.mark.subprocess
def test_train_mask_cell_runs_with_the_override(fake_run):
    code, out = fake_run("--methods", "qmf", "--seeds", "1", "--train-mask", "weak:0.5")
    assert code == 0
    save = f"{out}/runs/synthetic/qmf/eta0-mask_weak0.5/seed1"
    with open(f"{save}/cell.json") as f:
        cell = json.load(f)
    assert cell["identity"]["train_mask"] == ["weak", 0.5] and cell["ok"]
    assert "dataset_config.synthetic.train_mask=weak:0.5" in cell["command"]
    (f2,) = reports.build(out)["figure2"]
    # the fake run saw the mask: weak 60 - 20, strong 80 - 10 (QMF)
    assert f2.means.loc[("Weak", "50%", "QMF")].tolist() == pytest.approx([70, 40, 89.1])


def test_figure2_table_plot_and_pages(tmp_path, monkeypatch, capsys):
    out = str(tmp_path / "board")
    write_runs(out, ["mla", "qmf"], [1, 2])  # plain runs too
    masks = [("weak", 0.0), ("weak", 0.5), ("strong", 0.5), ("strong", 1.0)]
    write_runs(out, ["mla", "qmf"], [1, 2], masks=masks)
    assert cli.main(["--report-only", "--out", out]) == 0
    printed = capsys.readouterr().out
    runs = reports.load_runs(out)
    # the paper's tables use the plain runs only (2 methods × 2 seeds)
    assert reports.table1([r for r in runs if not r["train_mask"]]).counts.to_numpy().max() == 2
    assert "| synthetic | Multi | **89.15 ± 0.07** | <ins>79.15 ± 0.07</ins> |" in printed
    (f2,) = reports.figure2(runs)
    assert list(f2.means.columns) == ["Strong", "Weak", "Multi"]
    assert list(f2.means.index.names) == ["Masked in training", "Ratio", "Method"]
    assert list(f2.means.index) == [
        ("Strong", "50%", "QMF"),
        ("Strong", "50%", "MLA"),
        ("Strong", "100%", "QMF"),
        ("Strong", "100%", "MLA"),
        ("Weak", "0%", "QMF"),
        ("Weak", "0%", "MLA"),
        ("Weak", "50%", "QMF"),
        ("Weak", "50%", "MLA"),
    ]
    # weak masked in half the train samples: its accuracy 60 - 20; strong's 80 - 10 for QMF only
    assert f2.means.loc[("Weak", "50%", "QMF")].tolist() == pytest.approx([70, 40, 89.15])
    assert f2.means.loc[("Weak", "50%", "MLA")].tolist() == pytest.approx([80, 40, 79.15])
    assert f2.counts.to_numpy().min() == 2
    md = open(f"{out}/leaderboard.md").read()
    assert "### Figure 2: synthetic, test accuracy (%)" in md
    assert "| Weak | 50% | QMF | 70.00 ± 0.00 | 40.00 ± 0.00 | 89.15 ± 0.07 |" in md
    page = open(f"{out}/index.html").read()
    assert "Modality isolation (Figure 2)" in page and 'data-plot="figure2"' in page
    assert "training masks (Figure 2)" in page and "weak:0.5" in page
    csv = open(f"{out}/leaderboard.csv").read()
    assert ",weak:0.5\n" in csv and ",strong:1\n" in csv
    monkeypatch.setattr(plots, "_png", lambda fig: fig)
    fig = plots.figure2_plot(f2)
    axes = [ax for ax in fig.axes if ax.axison]
    assert len(axes) == 6  # 2 masked modalities × (Strong, Weak, Multi)
    weak_on_strong = axes[3]  # weak masked: the Strong panel
    lines = {ln.get_label(): ln for ln in weak_on_strong.lines}
    assert list(lines["QMF"].get_xdata()) == [0, 50]
    assert list(lines["QMF"].get_ydata()) == pytest.approx([80, 70])
    assert list(lines["MLA"].get_ydata()) == pytest.approx([80, 80])
    assert weak_on_strong.get_ylim()[0] == 0
    assert reports.to_markdown(f2) in md and reports.to_markdown(f2) in printed
