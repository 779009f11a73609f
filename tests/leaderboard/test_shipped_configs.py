"""The leaderboard configs shipped in projects/mla/leaderboard/ cannot drift: each plans
(``--dry-run``), and paper.yaml's and paper_missing.yaml's settings (their overrides
included) run one cell of each kind -- a method, the unimodal reference, the probe -- at a
tiny size on ``synthetic`` (their own datasets are not in the repository)."""

import glob
import os
import re

import numpy as np
import pytest
import yaml

from mla_plugin.leaderboard.methods import unimodal_variant
from tests.support import REPO, run_cli

CONFIGS = sorted(glob.glob(os.path.join(REPO, "projects", "mla", "leaderboard", "*.yaml")))
TINY = [
    "--set",
    "training.max_epochs=1",
    "--set",
    "dataset_config.synthetic.sizes.train=128",
    "--set",
    "dataset_config.synthetic.sizes.val=64",
    "--set",
    "dataset_config.synthetic.sizes.test=64",
]


def _settings(path):
    with open(path) as f:
        return yaml.safe_load(f)["leaderboard"]


def _features_folder(tmp_path):
    """A data folder whose train.npz names avdigits_features' modalities, for the demo's
    plan (the features themselves come from ``make demo``'s first step)."""
    folder = tmp_path / "features"
    folder.mkdir()
    np.savez(folder / "train.npz", x_audio=np.zeros((1, 2)), x_image=np.zeros((1, 2)))
    return str(folder)


def test_every_shipped_config_is_covered():
    names = {os.path.basename(p) for p in CONFIGS}
    assert {"demo.yaml", "paper.yaml", "paper_missing.yaml"} <= names


@pytest.mark.subprocess
@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_shipped_config_plans(path, tmp_path):
    extra = []
    if "avdigits_features" in _settings(path)["datasets"]:
        extra = ["--set", f"dataset_config.features.data_dir={_features_folder(tmp_path)}"]
    out = str(tmp_path / "out")
    proc = run_cli(
        "mla-leaderboard", ["--config", path, "--out", out, "--dry-run", *extra], timeout=600
    )
    commands = [line for line in proc.stdout.splitlines() if "env.save_dir=" in line]
    assert commands and not os.path.exists(os.path.join(out, "runs"))  # planned, not run
    settings = _settings(path)
    # every kind of cell takes the config's {method} overrides only where its model has them
    probes = [c for c in commands if "mla_plugin.analysis.probe" in c]
    assert probes and not any("model_config.probe" in c for c in probes)
    if "model_config.{method}.missing_fill=zeros" in settings.get("overrides", []):
        trained = [c for c in commands if c not in probes]
        for c in trained:
            method = re.search(r" model=(\S+)", c).group(1)
            assert f"model_config.{method}.missing_fill=zeros" in c, c
        # Table 2's 12 methods x the rates x 3 seeds, besides the references
        rates, seeds = len(settings["missing_rates"]), settings["seeds"]
        methods = [c for c in trained if "model=unimodal" not in c]
        assert len(methods) == 12 * rates * seeds == 252


@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.parametrize("name", ["paper.yaml", "paper_missing.yaml"])
def test_one_cell_of_each_kind_runs(name, tmp_path):
    path = os.path.join(REPO, "projects", "mla", "leaderboard", name)
    out = tmp_path / "out"
    rates = ["--missing-rates", "0.5"] if len(_settings(path)["missing_rates"]) > 1 else []
    args = ["--config", path, "--datasets", "synthetic", "--methods", "concat", "--seeds", "1"]
    args += ["--references", "unimodal", "probe", "--jobs", "2", "--out", str(out), "--no-progress"]
    run_cli("mla-leaderboard", [*args, *rates, *TINY], timeout=900, OMP_NUM_THREADS="1")
    setting = "eta0.5" if rates else "eta0"
    runs = out / "runs" / "synthetic"
    references = [unimodal_variant(m).folder for m in ("strong", "weak")]
    cells = ["concat", *references, "probe"]
    for cell in cells:
        assert (runs / cell / setting / "seed1" / "metrics.json").is_file(), cell
    assert (out / "leaderboard.md").is_file()
