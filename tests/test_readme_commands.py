"""The README's command blocks (```sh) run, so a renamed flag, key or config fails here.

Each command is run as the README writes it, made tiny or planned only:
* ``make X``: ``make -n X`` (the target and its recipe exist);
* ``mmf_run`` / ``mmf_predict`` / ``torchrun`` on ``synthetic``: really run, with tiny
  sizes, one epoch, their ``save/...`` folders under the test's own; on another dataset
  (its data not in the repository): the config is built and checked as the trainer does
  before it reads any data;
* ``mla-leaderboard`` and ``python -m mla_plugin.leaderboard``: ``--dry-run`` (the SLURM
  one: its settings parsed and checked, as no SLURM client is here);
* ``python -m mla_plugin.data.avdigits_features``: every flag it is given is in its
  ``--help``.
A command of any other kind fails the test until it is given a way to run here."""

import os
import re
import shlex
import subprocess

import numpy as np
import pytest

from tests.support import BIN, QUICK, REPO, run_cli, subprocess_env

TINY = [*QUICK[:3], "training.max_epochs=1"]


def readme_commands():
    with open(os.path.join(REPO, "README.md")) as f:
        blocks = re.findall(r"```sh\n(.*?)```", f.read(), re.S)
    commands = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            if line and not line.startswith("#"):
                commands.append(shlex.split(line))
    return commands


def _program(argv):
    if argv[0] == "make":
        return "make"
    if os.path.basename(argv[0]) == "python" and argv[1] == "-m":
        return argv[2]
    return os.path.basename(argv[0])


def _local(args, tmp_path):
    """Folders the README writes under the checkout (save/a, DIR) go under tmp_path."""
    out = []
    for a in args:
        a = re.sub(r"(?<==)save/", f"{tmp_path}/save/", a)
        out.append(a)
    return out


def _mmf(argv, tmp_path):
    opts = _local(argv[1:], tmp_path)
    config = next(o.split("=", 1)[1] for o in opts if o.startswith("config="))
    rest = [o for o in opts if not o.startswith("config=")]
    if not any(o.startswith("env.save_dir=") for o in rest):
        rest.append(f"env.save_dir={tmp_path}/run{len(os.listdir(tmp_path))}")
    if not config.endswith("synthetic.yaml"):  # built and checked, as before any data
        import argparse

        from mmf.common.registry import registry
        from mmf.utils.build import build_config
        from mmf.utils.configuration import Configuration

        from mla_plugin.config_validation import validate

        args = argparse.Namespace(opts=[f"config={config}", *rest], config_override=None)
        configuration = Configuration(args)
        configuration.args = args
        cfg = build_config(configuration)
        dataset = registry.get_builder_class(cfg.datasets.split(",")[0])
        validate(cfg, registry.get_model_class(cfg.model), dataset)
        return
    run_cli("mmf_run", [f"config={config}", *rest, *TINY], OMP_NUM_THREADS="1")


def _features_folder(tmp_path):
    folder = tmp_path / "features"
    folder.mkdir(exist_ok=True)
    np.savez(folder / "train.npz", x_audio=np.zeros((1, 2)), x_image=np.zeros((1, 2)))
    return str(folder)


def _leaderboard(args, tmp_path):
    args = [a.replace("DIR", _features_folder(tmp_path)) if a.endswith("=DIR") else a for a in args]
    if "--executor" in args:
        from mla_plugin.leaderboard import cli

        slurm = cli.resolve_settings(
            [*args, "--out", str(tmp_path / "slurm")],
        )
        assert slurm.executor == "slurm"
        return
    if "--config" in args and "demo.yaml" in args[args.index("--config") + 1]:
        args += ["--set", f"dataset_config.features.data_dir={_features_folder(tmp_path)}"]
    run_cli("mla-leaderboard", [*args, "--out", str(tmp_path / "board"), "--dry-run"])


def test_readme_has_commands():
    programs = {_program(c) for c in readme_commands()}
    assert {"make", "mmf_run", "mmf_predict", "torchrun", "mla-leaderboard"} <= programs


@pytest.mark.slow
@pytest.mark.subprocess
def test_readme_commands_run(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    for argv in readme_commands():
        program = _program(argv)
        if program == "make":
            proc = subprocess.run(["make", "-n", *argv[1:]], cwd=REPO, capture_output=True)
            assert proc.returncode == 0, (argv, proc.stderr)
        elif program == "mmf_run":
            _mmf(argv, work)
        elif program == "mmf_predict":
            run_cli("mmf_predict", [*_local(argv[1:], work), *TINY], OMP_NUM_THREADS="1")
            assert any(n.startswith("predictions_") for n in os.listdir(work / "save" / "a"))
        elif program == "torchrun":
            inner = argv.index(next(a for a in argv if a.endswith("mmf_run")))
            args = [*argv[1:inner], os.path.join(BIN, "mmf_run"), *argv[inner + 1 :]]
            save = f"env.save_dir={work}/torchrun"
            run_cli("torchrun", [*args, *TINY, save], timeout=600, OMP_NUM_THREADS="1")
        elif program == "mla-leaderboard":
            _leaderboard(argv[1:], work)
        elif program == "mla_plugin.leaderboard":
            _leaderboard(argv[3:], work)
        elif program == "mla_plugin.data.avdigits_features":
            proc = subprocess.run(
                [os.path.join(BIN, "python"), "-m", program, "--help"],
                cwd=REPO, env=subprocess_env(), capture_output=True, text=True,
            )  # fmt: skip
            assert proc.returncode == 0, proc.stderr
            for flag in (a.split("=")[0] for a in argv[3:] if a.startswith("--")):
                assert flag in proc.stdout, (argv, flag)
        else:
            pytest.fail(f"README runs {argv}: give the docs test a way to run {program}")
