"""Helpers the tests share: run MMF's own console scripts, and Python snippets, in
subprocesses that use this source tree (PYTHONPATH) with the bridge on; build a trainer
in-process as ``mmf_run`` would.  Imported as ``tests.support`` (conftest.py holds only
fixtures)."""

import contextlib
import json
import os
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
SYNTHETIC = "projects/mla/configs/synthetic.yaml"
# Small synthetic runs: a few seconds each on 2 cores.
QUICK = [
    "dataset_config.synthetic.sizes.train=512",
    "dataset_config.synthetic.sizes.val=256",
    "dataset_config.synthetic.sizes.test=256",
    "training.max_epochs=3",
]


def subprocess_env(disable=None, **extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("MLA_BRIDGE_DISABLE", None)
    if disable:
        env["MLA_BRIDGE_DISABLE"] = disable
    env.update(extra)
    return env


def run_cli(script, args, disable=None, timeout=300, check=True, **extra):
    """Run ``.venv/bin/<script> args`` from the repo root; returns the CompletedProcess."""
    cmd = [os.path.join(BIN, script)] + list(args)
    proc = subprocess.run(
        cmd,
        cwd=REPO,
        env=subprocess_env(disable, **extra),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({proc.returncode}):\n"
            f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
        )
    return proc


def run_python(code, disable=None, timeout=120):
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=subprocess_env(disable),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def make_trainer(save_dir, *opts, config=SYNTHETIC):
    """Build and load the configured MMF trainer in this process, as ``mmf_run`` would
    (``save_dir`` None: no ``env.save_dir``, the default run folder)."""
    import argparse

    from mmf.utils.build import build_config, build_trainer
    from mmf.utils.configuration import Configuration

    import mla_plugin

    mla_plugin.register()

    args = argparse.Namespace(
        opts=[f"config={config}", *([f"env.save_dir={save_dir}"] if save_dir else []), *opts],
        config_override=None,
    )
    configuration = Configuration(args)
    configuration.args = args
    trainer = build_trainer(build_config(configuration))
    trainer.load()
    return trainer


def read_metrics(save_dir):
    with open(os.path.join(save_dir, "metrics.json")) as f:
        return json.load(f)


def three_modality_yaml(width=64, missing_rate=0.3, extra=""):
    """An experiment config of ``synthetic`` with three modalities (a, b, c; signals 3, 1,
    0.5), MLP encoders of ``width`` and the given missing rate; ``extra`` is appended
    under ``dataset_config.synthetic`` (indented YAML lines)."""
    encoder = f"{{type: mlp, params: {{in_dim: 32, out_dim: {width}, hidden: {width}, layers: 2}}}}"
    return f"""
includes:
  - {os.path.join(REPO, SYNTHETIC)}
multimodal:
  encoders:
    a: {encoder}
    b: {encoder}
    c: {encoder}
dataset_config:
  synthetic:
    modalities: [a, b, c]
    signal: [3.0, 1.0, 0.5]
    missing_rate: {missing_rate}
{extra}"""


@contextlib.contextmanager
def apt_lock():
    """One apt-get at a time across the test processes (``make test`` runs two pytest-xdist
    workers; two installs at once would fight over dpkg's lock on a fresh machine)."""
    import fcntl

    with open(os.path.join(tempfile.gettempdir(), "mla-plugin-tests-apt.lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
