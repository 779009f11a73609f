"""Where default data and cache paths hang off."""

import os
from pathlib import Path


def project_root() -> Path:
    """The source checkout the plugin runs from, else the current directory.

    Default data and cache paths (``<root>/../shared/data/...``, ``<root>/.cache``) hang
    off it, so they work both from a checkout (``PYTHONPATH=.``) and from an installed
    copy run in the checkout.
    """
    src = Path(__file__).resolve().parents[2]
    if (src / "pyproject.toml").is_file() and (src / "mla_plugin").is_dir():
        return src
    return Path(os.getcwd())


def default_data_path(env_var: str, *relative: str) -> Path:
    """``$env_var`` when set, else ``<project_root>/../<relative...>``."""
    env = os.environ.get(env_var)
    return Path(env) if env else project_root().parent.joinpath(*relative)


def default_cache_path(name: str) -> Path:
    """``$MLA_CACHE_DIR/<name>`` when set, else ``<project_root>/.cache/<name>``."""
    env = os.environ.get("MLA_CACHE_DIR")
    return (Path(env) if env else project_root() / ".cache") / name
