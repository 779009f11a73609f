"""The leaderboard's datasets: a cell's identity covers its data folder (reusing an ``--out``
with another folder never reports the first folder's runs), datasets are named after their
folder or a given ``name``, and the protocol says how val came about and the epochs run."""

import json
import os
import sys

import numpy as np
import pandas as pd
import pytest

from mla_plugin.leaderboard import cli, reports
from mla_plugin.leaderboard.data import fingerprint, parse_spec
from mla_plugin.leaderboard.plan import plan
from tests.builders.test_builders import write_features
from tests.support import REPO, run_cli


def _write_folder(d, positives, val=False):
    """A tiny features folder whose test labels are 1 for the first ``positives`` of 20."""
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(0)
    for split in ("train", "test") + (("val",) if val else ()):
        y = (np.arange(20) < positives).astype(int)
        np.savez(os.path.join(d, f"{split}.npz"), y=y, x_a=rng.normal(size=(20, 3)))
    return str(d)


# A fake mmf_run: its "accuracy" is the share of label 1 in the test.npz it was pointed at,
# so every number in a report says which folder it came from.
FAKE_MMF_RUN = r"""
import json, os, sys
import numpy as np
args = dict(a.split("=", 1) for a in sys.argv[1:])
save, data = args["env.save_dir"], args["dataset_config.features.data_dir"]
with open(os.environ["FAKE_CALLS"], "a") as f:
    f.write(save + " " + data + "\n")
acc = float(np.load(os.path.join(data, "test.npz"))["y"].mean())
os.makedirs(save, exist_ok=True)
json.dump({"method": args["model"], "dataset": "features", "seed": int(args["training.seed"]),
           "selection": "val", "selected_epoch": 1, "modalities": ["a"],
           "val": {"multi": acc, "a": acc}, "test": {"multi": acc, "a": acc}},
          open(os.path.join(save, "metrics.json"), "w"))
"""


@pytest.fixture
def fake(tmp_path, monkeypatch):
    script = tmp_path / "fake_mmf_run"
    script.write_text(f"#!{sys.executable}\n" + FAKE_MMF_RUN)
    script.chmod(0o755)
    calls = tmp_path / "calls.txt"
    calls.write_text("")
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("MLA_LEADERBOARD_MMF_RUN", str(script))
    monkeypatch.setenv("FAKE_CALLS", str(calls))
    out = tmp_path / "board"
    base = ["--methods", "concat", "mla", "--seeds", "2", "--gap-methods", "none"]
    base += ["--references", "none"]
    base += ["--no-progress", "--out", str(out)]

    def run(*args):
        before = len(calls.read_text().splitlines())
        code = cli.main([*base, *args])
        return code, calls.read_text().splitlines()[before:]

    return run, out


@pytest.mark.subprocess
def test_another_data_folder_in_the_same_out_is_never_reported_as_the_first(fake, tmp_path, capsys):
    run, out = fake
    alpha = _write_folder(tmp_path / "alpha", positives=18)  # accuracy 0.9
    beta = _write_folder(tmp_path / "beta", positives=6)  # accuracy 0.3
    code, calls = run(
        "--datasets", "features", "--set", f"dataset_config.features.data_dir={alpha}"
    )
    assert code == 0 and len(calls) == 4
    # the new user's case: the same command with only the data folder changed
    code, calls = run("--datasets", "features", "--set", f"dataset_config.features.data_dir={beta}")
    err = capsys.readouterr().err
    assert code == 0 and "already finished" not in err
    assert len(calls) == 4 and all(c.endswith(" " + beta) for c in calls)  # every cell ran anew
    runs = reports.load_runs(str(out))
    assert sorted({r["dataset"] for r in runs}) == ["alpha", "beta"]
    for r in runs:  # each result is its own folder's: alpha 0.9, beta 0.3, never mixed
        assert r["test"]["multi"] == pytest.approx({"alpha": 0.9, "beta": 0.3}[r["dataset"]])
        ident = json.load(open(os.path.join(r["run_dir"], "cell.json")))["identity"]
        assert ident["data_dir"] == {"alpha": alpha, "beta": beta}[r["dataset"]]
    csv = pd.read_csv(out / "leaderboard.csv")
    assert set(csv["dataset"]) == {"alpha", "beta"}
    t1 = reports.build(str(out))["table1"]
    assert t1.means.loc[("alpha", "Multi"), "MLA"] == pytest.approx(90.0)
    assert t1.means.loc[("beta", "Multi"), "MLA"] == pytest.approx(30.0)

    # rerun on alpha: its own runs are reused (a dry run marks them [done]), nothing runs
    assert run("--datasets", f"features:data_dir={alpha}", "--dry-run")[0] == 0
    assert capsys.readouterr().out.count("[done] ") == 4
    code, calls = run("--datasets", f"features:data_dir={alpha}")
    assert code == 0 and calls == [] and "4 of 4 runs already finished" in capsys.readouterr().err
    # a different folder with the same name is refused, naming both folders
    other = _write_folder(tmp_path / "elsewhere" / "alpha", positives=2)
    code, calls = run("--datasets", f"features:data_dir={other}")
    err = capsys.readouterr().err
    assert code == 2 and calls == []
    assert f"it ran on data folder {alpha}, this leaderboard's is {other}" in err
    assert "--datasets CONFIG:name=NAME" in err and "overrides" not in err.split("\n", 1)[1]
    # ... and runs under a name of its own
    code, calls = run("--datasets", f"features:data_dir={other},name=alpha2")
    assert code == 0 and len(calls) == 4
    # alpha's files changed since its runs: refused, not reused
    _write_folder(tmp_path / "alpha", positives=10)
    code, calls = run("--datasets", f"features:data_dir={alpha}", "--dry-run")
    err = capsys.readouterr().err
    assert code == 2 and calls == [] and f"the files of data folder {alpha} changed" in err
    # other overrides are part of the identity too
    code, calls = run("--datasets", f"features:data_dir={beta}", "--set", "training.max_epochs=7")
    err = capsys.readouterr().err
    assert code == 2 and calls == [] and "training.max_epochs=7" in err


@pytest.mark.subprocess
def test_a_finished_run_without_an_identity_is_not_reused(fake, tmp_path, capsys):
    run, out = fake
    alpha = _write_folder(tmp_path / "alpha", positives=18)
    assert run("--datasets", f"features:data_dir={alpha}")[0] == 0
    cell = out / "runs/alpha/mla/eta0/seed1/cell.json"
    record = json.loads(cell.read_text())
    del record["identity"]  # as an older leaderboard wrote it
    cell.write_text(json.dumps(record))
    code, calls = run("--datasets", f"features:data_dir={alpha}")
    assert code == 2 and calls == [] and "records no identity" in capsys.readouterr().err


def test_dataset_names_and_specs(tmp_path):
    a = _write_folder(tmp_path / "mosi data", positives=3)
    cells = plan(
        [
            f"features:data_dir={a}",
            {"config": "features", "data_dir": a, "name": "mosi-v2", "overrides": ["x.y=1"]},
            "synthetic",
            "cremad",
        ],
        ["mla"],
        [1],
        [0.0],
        str(tmp_path / "out"),
        root=REPO,
    )
    assert [c.dataset for c in cells] == ["mosi_data", "mosi-v2", "synthetic", "cremad"]
    assert cells[1].overrides == (f"dataset_config.features.data_dir={a}", "x.y=1")
    assert cells[1].save_dir == str(tmp_path / "out/runs/mosi-v2/mla/eta0/seed1")
    assert cells[2].data["dir"] is None and cells[2].data["val"] == "generated"
    assert cells[3].data["default_location"] is True  # known datasets keep their key and label
    moved = plan(["cremad:data_dir=/some/where/cremad_16k"], ["mla"], [1], [0.0], "o", root=REPO)
    assert moved[0].dataset == "cremad_16k"
    with pytest.raises(ValueError, match="both be named 'x'"):
        plan(
            ["features:data_dir=/p/x", "features:data_dir=/q/x"],
            ["mla"],
            [1],
            [0.0],
            "o",
            root=REPO,
        )
    with pytest.raises(ValueError, match="not name=... or data_dir="):
        parse_spec("features:dir=/p")
    with pytest.raises(ValueError, match="must be letters"):
        parse_spec("features:name=a b")
    with pytest.raises(ValueError, match=r"unknown keys \['nmae'\]"):
        parse_spec({"config": "features", "nmae": "a"})
    with pytest.raises(ValueError, match="synthetic has no data folder"):
        plan(["synthetic:data_dir=/p"], ["mla"], [1], [0.0], "o", root=REPO)


def test_fingerprint_follows_the_files_not_their_mtimes(tmp_path):
    d = _write_folder(tmp_path / "f", positives=3)
    first = fingerprint(d)
    assert first["files"] == 2 and len(first["fingerprint"]) == 64
    os.utime(os.path.join(d, "test.npz"), (1, 1))
    (tmp_path / "f" / ".hidden").write_text("editor state")
    assert fingerprint(d)["fingerprint"] == first["fingerprint"]
    _write_folder(tmp_path / "f", positives=4)  # same sizes, other labels
    assert fingerprint(d)["fingerprint"] != first["fingerprint"]
    assert fingerprint(str(tmp_path / "nowhere"))["note"] == "does not exist"


def test_settings_file_takes_dataset_mappings(tmp_path):
    spec = tmp_path / "lb.yaml"
    spec.write_text(
        "datasets:\n  - avdigits\n  - {config: features, data_dir: /d/mosi, name: mosi}\n"
    )
    s = cli.resolve_settings(["--config", str(spec)])
    assert s.datasets == [
        "avdigits",
        {"config": "features", "data_dir": "/d/mosi", "name": "mosi"},
    ]


# ------------------------------------------------------------- real runs
@pytest.mark.subprocess
@pytest.mark.slow
def test_protocol_says_whether_val_was_supplied_or_carved(tmp_path):
    """Real mmf_run on two features folders in one leaderboard, one with val.npz."""
    carved = write_features(str(tmp_path / "carved"))
    supplied = write_features(str(tmp_path / "supplied"))
    with np.load(os.path.join(supplied, "test.npz")) as z:
        np.savez(os.path.join(supplied, "val.npz"), **{k: z[k][:24] for k in z.files})
    out = str(tmp_path / "board")
    args = ["--datasets", f"features:data_dir={carved}", f"features:data_dir={supplied},name=given"]
    args += ["--methods", "concat", "--seeds", "1", "--gap-methods", "none", "--no-progress"]
    args += ["--references", "none"]
    args += ["--out", out, "--", "training.max_epochs=3"]
    run_cli("mla-leaderboard", args, timeout=600)
    proto = reports.protocol(reports.load_runs(out), out)
    assert sorted(proto) == ["carved", "given"]  # two folders, two names
    assert (
        "val carved from train.npz (val_fraction 0.1; the data has no val part)"
        in (proto["carved"]["split"])
    )
    assert "val supplied with the data (val.npz), nothing carved" in proto["given"]["split"]
    assert "carved" not in proto["given"]["split"].replace("nothing carved", "")
    for name, folder in (("carved", carved), ("given", supplied)):
        metrics = json.load(open(os.path.join(out, f"runs/{name}/concat/eta0/seed1/metrics.json")))
        assert proto[name]["epochs"] == (
            f"3 run (training.max_epochs); selected epoch {metrics['selected_epoch']}"
        )
        assert proto[name]["data"].startswith(f"{folder} (given; ")
        assert f"dataset_config.features.data_dir={folder}" in proto[name]["leaderboard overrides"]
    md = open(os.path.join(out, "leaderboard.md")).read()
    page = open(os.path.join(out, "index.html")).read()
    for text in ("val supplied with the data (val.npz)", "val carved from train.npz", "| given |"):
        assert text in md
    assert "val supplied with the data (val.npz)" in page and "val carved from train.npz" in page
