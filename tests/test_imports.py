"""What importing costs: the method's math and the readers load neither MMF nor the
bridge, and the start-up hook (``mla_bridge.pth`` -> :mod:`mla_bridge_hook`) still turns
the bridge on before MMF.

Each check runs in a fresh interpreter whose site-packages are the venv's with this
tree's ``mla_bridge.pth`` in place of the installed one (what ``make install`` leaves),
so it holds whatever version of the plugin the venv has installed."""

import os
import subprocess
import sys
import sysconfig

import pytest

from tests.support import REPO, subprocess_env

pytestmark = pytest.mark.subprocess

# site as `make install` leaves it: the venv's packages and .pth files, with this tree's
# start-up file standing in for the installed one
SITE = """
import os, shutil, site, sys, tempfile
purelib = {purelib!r}
sys.path.append(purelib)
here = tempfile.mkdtemp()
for name in os.listdir(purelib):
    if name.endswith(".pth") and name != "mla_bridge.pth":
        shutil.copy(os.path.join(purelib, name), here)
shutil.copy(os.path.join({repo!r}, "mla_bridge.pth"), here)
site.addsitedir(here)
"""

MMF_LAYER = (
    "mmf",
    "mmf_cli",
    "mla_bridge",
    "mla_plugin.models",
    "mla_plugin.builders",
    "mla_plugin.trainers",
    "mla_plugin.leaderboard",
    "mla_plugin.mmf_config",
)


def fresh(code: str) -> list[str]:
    """Run ``code`` (after the site set-up) with ``python -S``; its printed lines."""
    proc = subprocess.run(
        [
            sys.executable,
            "-S",
            "-c",
            SITE.format(repo=REPO, purelib=sysconfig.get_paths()["purelib"]) + code,
        ],
        cwd=REPO,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.split()


def _loaded(names) -> str:
    return f"print(*[m for m in {names!r} if m in sys.modules] or ['none'])\n"


def test_start_up_hook_loads_nothing():
    assert fresh(_loaded(MMF_LAYER + ("torch", "mla_plugin"))) == ["none"]


def test_importing_core_and_data_loads_neither_mmf_nor_the_bridge():
    assert fresh("import mla_plugin.core, mla_plugin.data\n" + _loaded(MMF_LAYER)) == ["none"]


def test_every_module_of_core_and_data_is_framework_free():
    code = (
        "import importlib, pkgutil\n"
        "import mla_plugin.core, mla_plugin.data\n"
        "for pkg in (mla_plugin.core, mla_plugin.data):\n"
        "    for m in pkgutil.iter_modules(pkg.__path__, pkg.__name__ + '.'):\n"
        "        importlib.import_module(m.name)\n"
        "print(len([m for m in sys.modules if m.startswith('mla_plugin.core.')]))\n"
        + _loaded(MMF_LAYER)
    )
    count, *loaded = fresh(code)
    modules = [f for f in os.listdir(os.path.join(REPO, "mla_plugin", "core")) if f.endswith(".py")]
    assert int(count) == len(modules) - 1  # all imported (less __init__.py)
    assert loaded == ["none"]


def test_the_bridge_turns_on_at_the_first_mmf_import():
    code = (
        "import mla_plugin.core\n"
        "import mmf.common.registry\n"
        "print([type(f).__name__ for f in sys.meta_path][0])\n"
        "print(any(type(f).__name__ == '_BridgeOnFirstMMFImport' for f in sys.meta_path))\n"
        "from mmf.utils.configuration import get_default_config_path\n"
        "import mla_bridge\n"
        "print(get_default_config_path() == os.path.join(mla_bridge.BRIDGE_DIR, 'defaults.yaml'))\n"
    )
    assert fresh(code) == ["MMFPatchFinder", "False", "True"]


def test_planning_dry_run_and_status_load_neither_torch_nor_mmf(tmp_path):
    """The leaderboard plans a tuned grid, prints its commands (--dry-run) and its cells'
    states (--status) without loading torch or MMF: only its cells do."""
    args = ["--datasets", "synthetic", "--methods", "concat", "mla", "--seeds", "1"]
    args += ["--tune", "2", "--no-progress", "--out", str(tmp_path / "board")]
    code = (
        "import contextlib, io\n"
        "from mla_plugin.leaderboard import cli\n"
        "for mode in ('--dry-run', '--status'):\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        f"        assert cli.main({args!r} + [mode]) == 0\n"
        + _loaded(("torch", "mmf", "mmf_cli", "mla_bridge", "mla_plugin.trainers"))
    )
    assert fresh(code) == ["none"]
