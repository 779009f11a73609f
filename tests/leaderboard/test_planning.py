"""The leaderboard's planning side: it plans, dry-runs and reports status without torch or
MMF; the experiment loader (OmegaConf includes and interpolation, paths from the
repository); the manifest of MMF's models; variant names; the typed run record."""

import json
import os
import subprocess
import sys

import pytest

from mla_plugin.leaderboard import experiments
from mla_plugin.leaderboard.methods import ABLATION, Variant, mmf_models, unimodal_variant
from mla_plugin.leaderboard.plan import dataset_modalities, plan, resolve_config
from mla_plugin.leaderboard.runs import RunRecord, load_runs
from mla_plugin.utils.variants import variant_name
from tests.support import REPO, subprocess_env

NO_FRAMEWORK = """
import sys
from mla_plugin.leaderboard.cli import main
code = main(sys.argv[1:])
heavy = sorted(m for m in ("torch", "mmf") if m in sys.modules)
print("HEAVY", ",".join(heavy))
sys.exit(code)
"""


@pytest.mark.subprocess
@pytest.mark.parametrize("mode", ["--dry-run", "--status"])
def test_dry_run_and_status_import_neither_torch_nor_mmf(tmp_path, mode):
    """In a fresh interpreter started outside the repository, ``main([... --dry-run])``
    (and ``--status``) plans every cell, references and ablation included, and leaves
    ``torch`` and ``mmf`` out of ``sys.modules``."""
    args = ["--datasets", "synthetic", "--methods", "concat", "mla", "concat_bow", "--seeds", "2"]
    args += ["--ablation", "--out", str(tmp_path / "board"), mode, "--", "training.max_epochs=2"]
    proc = subprocess.run(
        [sys.executable, "-c", NO_FRAMEWORK, *args],
        cwd=str(tmp_path),  # the configs are found from the package, not the working directory
        env=subprocess_env(MLA_LEADERBOARD_MMF_RUN="mmf_run"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "HEAVY \n" in proc.stdout, proc.stdout[-500:]
    if mode == "--dry-run":
        assert "model=concat_bow" in proc.stdout
        assert "model_config.mla.hgm=off" in proc.stdout
        assert "mla_plugin.analysis.probe" in proc.stdout  # the probe reference cell
    else:
        assert "pending" in proc.stdout and "mla[hgm-off]" in proc.stdout


def test_experiment_loader_merges_includes_and_resolves_interpolations(tmp_path):
    (tmp_path / "base.yaml").write_text(
        "multimodal:\n  modalities: [a, b]\n  n: 2\nlist: [1, 2]\nenv:\n  x: ${env.data_dir}/d\n"
    )
    (tmp_path / "top.yaml").write_text(
        "includes: [base.yaml]\nmultimodal:\n  n: 3\n  copy: ${multimodal.modalities}\n"
    )
    config = experiments.load(str(tmp_path / "top.yaml"))
    assert experiments.select(config, "multimodal.copy") == ["a", "b"]  # across files
    assert experiments.select(config, "multimodal.n") == 3  # the including file wins
    assert experiments.select(config, "env.x") is None  # MMF's run-time setting: unknown
    assert experiments.select(config, "no.such.key", "d") == "d"
    assert experiments.to_container(config)["env"] == {"x": None}
    (tmp_path / "loop.yaml").write_text("includes: [loop.yaml]\n")
    with pytest.raises(experiments.ConfigError, match="includes itself"):
        experiments.load(str(tmp_path / "loop.yaml"))
    (tmp_path / "bad.yaml").write_text("includes: [nosuch.yaml]\n")
    with pytest.raises(experiments.ConfigError, match=r"nosuch.yaml: cannot read it"):
        experiments.load(str(tmp_path / "bad.yaml"))


def test_configs_are_found_from_the_repository_not_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    name, mmf_dataset, config = resolve_config("synthetic")
    assert (name, mmf_dataset) == ("synthetic", "synthetic")
    assert config == os.path.join("projects", "mla", "configs", "synthetic.yaml")
    # synthetic.yaml's multimodal.modalities is an interpolation, resolved by OmegaConf
    assert dataset_modalities(config, mmf_dataset, None) == ["strong", "weak"]


def test_an_installed_copy_run_from_the_checkout_plans_the_same_identities(tmp_path, monkeypatch):
    """``make demo`` runs the checkout's package (``python -m``), the README's commands the
    installed one, whose root has no ``projects/``: from the checkout both name the
    repository's configs alike, so each sees the other's runs as its own (the installed
    copy's absolute path made every cell of a ``make demo`` board "interrupted")."""
    installed = tmp_path / "site-packages"  # a package root without projects/
    installed.mkdir()
    monkeypatch.chdir(REPO)
    args = (["synthetic"], ["concat"], [1], [0.0], str(tmp_path / "b"))  # no data to build
    tree = plan(*args, root=REPO, references=["unimodal"])
    copy = plan(*args, root=str(installed), references=["unimodal"])
    assert [c.identity for c in copy] == [c.identity for c in tree]
    assert copy[0].identity["config"] == os.path.join(
        "projects", "mla", "configs", "synthetic.yaml"
    )
    # a board the installed copy wrote before (the config's absolute path) is still its own
    cell = tree[0]
    os.makedirs(cell.save_dir)
    old = dict(cell.identity, config=os.path.join(REPO, cell.identity["config"]))
    with open(cell.record_path, "w") as f:
        json.dump({"identity": old}, f)
    with open(cell.metrics_path, "w") as f:
        json.dump({}, f)
    assert cell.done() and cell.conflict() is None
    with open(cell.record_path, "w") as f:  # another config is another identity
        json.dump({"identity": dict(old, config=old["config"].replace("synthetic", "avdigits"))}, f)
    assert not cell.done() and "config was" in cell.conflict()
    # a config of the user's own, given by a relative path, stays absolute (stable)
    own = tmp_path / "own.yaml"
    own.write_text(
        "includes:\n  - " + os.path.join(REPO, "projects/mla/configs/synthetic.yaml") + "\n"
    )
    monkeypatch.chdir(tmp_path)
    assert resolve_config("own.yaml", str(installed))[2] == str(own)


@pytest.mark.subprocess
@pytest.mark.slow
def test_the_manifest_lists_mmfs_registered_models():
    """mla_plugin/configs/mmf_models.yaml (what planning accepts) against rc10's registry
    less the plugin's own models."""
    code = (
        "import json, mla_plugin, mmf.models\n"
        "from mmf.common.registry import registry\n"
        "print(json.dumps(sorted(registry.mapping['model_name_mapping'])))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    registered = json.loads(proc.stdout.strip().splitlines()[-1])
    plugin = {f[:-5] for f in os.listdir(os.path.join(REPO, "mla_plugin/configs/models"))}
    assert sorted(set(registered) - plugin) == sorted(mmf_models())


def test_variant_names_are_the_trainers():
    names = {k: v.name for k, v in ABLATION.items()}
    assert names == {
        (False, False): "mla[fusion=mean,hgm=off]",
        (False, True): "mla[hgm=off]",  # fusion=entropy is the default: not in the name
        (True, False): "mla[fusion=mean]",
        (True, True): "mla",
    }
    assert names[(False, True)] == variant_name("mla", {"hgm": "off"})
    assert ABLATION[(False, False)].folder == "mla[fusion-mean,hgm-off]"
    assert unimodal_variant("audio").name == "unimodal[modality=audio]"
    assert Variant("concat_bow").name == "concat_bow"  # MMF's model: no YAML, no switches


def test_plan_names_folders_and_records_by_variant(tmp_path):
    cells = plan(["synthetic"], ["mla"], [1], [0.0], str(tmp_path), ablation=True, root=REPO)
    by_name = {c.variant.name: c for c in cells}
    assert set(by_name) == {v.name for v in ABLATION.values()}
    cell = by_name["mla[hgm=off]"]
    assert cell.identity["variant"] == "mla[hgm=off]"
    assert cell.save_dir == str(tmp_path / "runs/synthetic/mla[hgm-off]/eta0/seed1")


def test_run_record_combines_cell_json_metrics_and_gap(tmp_path):
    run = tmp_path / "runs" / "synthetic" / "mla[hgm-off]" / "eta0.3" / "seed2"
    run.mkdir(parents=True)
    metrics = {"method": "mla", "seed": 2, "test": {"multi": 0.5}, "modalities": ["a", "b"]}
    (run / "metrics.json").write_text(json.dumps(metrics))
    cell = {"dataset": "syn", "variant": "mla[hgm=off]", "missing_rate": 0.3, "seconds": 4.0}
    (run / "cell.json").write_text(json.dumps(cell))
    (run / "gap.json").write_text(json.dumps({"gap": 0.25}))
    record = RunRecord.load(str(run), str(tmp_path / "runs"))
    assert (record.dataset, record.variant, record.seed) == ("syn", "mla[hgm=off]", 2)
    row = load_runs(str(tmp_path))[0]
    assert row == record.row()
    assert row["gap"] == {"gap": 0.25} and row["missing_rate"] == 0.3 and row["seconds"] == 4.0
    assert row["test"] == {"multi": 0.5} and row["train_mask"] is None
    os.remove(run / "cell.json")  # an older run: the folder names stand in
    row = RunRecord.load(str(run), str(tmp_path / "runs")).row()
    assert (row["dataset"], row["variant"], row["missing_rate"]) == (
        "synthetic",
        "mla[hgm-off]",
        0.3,
    )
    os.remove(run / "metrics.json")
    assert RunRecord.load(str(run)) is None


def test_the_method_set_all_is_every_registered_plugin_model():
    """``--methods all`` plans every plugin model (a YAML in configs/models), the paper's
    eight first; ``paper`` keeps the set ``all`` named before the field's methods."""
    from mla_plugin.leaderboard.methods import ALL_METHODS, METHOD_SETS, METHODS, plugin_models
    from mla_plugin.leaderboard.settings import Settings

    everything = METHOD_SETS["all"]
    assert sorted(everything) == plugin_models() and everything[: len(METHODS)] == METHODS
    assert METHOD_SETS["paper"] == ALL_METHODS
    assert Settings(methods=["all"]).validate().methods == everything
