"""The one reader of the YAML files the leaderboard plans from: experiment configs
(``projects/mla/configs/*.yaml``), the package's dataset defaults and the leaderboard
settings files (``projects/mla/leaderboard/*.yaml``).

A file is read with OmegaConf, its ``includes:`` (paths relative to the including file,
MMF's rule) merged first, in order, then the file itself; ``${...}`` interpolations are
OmegaConf's, resolved on access.  An interpolation that cannot be resolved here (e.g.
``${env.data_dir}``, MMF's run-time setting) reads as unknown (None), never as its text.
Relative names are resolved against the repository (:data:`CONFIG_DIR`), not the working
directory.  This module imports neither torch nor MMF.
"""

from __future__ import annotations

import os
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mla_plugin.leaderboard.cells import REPO_ROOT

CONFIG_DIR = os.path.join("projects", "mla", "configs")  # relative to the repository
NOT_EXPERIMENTS = ("defaults.yaml",)


class ConfigError(ValueError):
    """A YAML file the leaderboard cannot read: names the file (and the include chain)."""


def chain(path: str, what: str = "config keys", _via: tuple = ()) -> list[tuple[str, DictConfig]]:
    """``(path, config)`` of every file ``path`` includes (recursively, in order), then of
    ``path`` itself; each config holds its own file's keys only (``what`` names them in the
    error a non-mapping file gets)."""
    path = os.path.abspath(path)
    where = " (included from " + " <- ".join(_via) + ")" if _via else ""
    if path in _via:
        raise ConfigError(f"{path}: includes itself{where}")
    try:
        with open(path) as f:
            raw = yaml.safe_load(f)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it{where}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML{where}: {exc}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path}: expected a mapping of {what}, got a {type(raw).__name__}{where}"
        )
    includes = raw.pop("includes", None) or []
    if not isinstance(includes, list):
        raise ConfigError(f"{path}: includes must be a list of paths, got {includes!r}")
    files = []
    for inc in includes:
        files += chain(os.path.join(os.path.dirname(path), str(inc)), what, (*_via, path))
    try:
        return [*files, (path, OmegaConf.create(raw))]
    except OmegaConfBaseException as exc:
        raise ConfigError(f"{path}: {exc}") from None


def load(path: str) -> DictConfig:
    """The file with its ``includes:`` merged first (OmegaConf's merge, as MMF does);
    interpolations left for :func:`select` to resolve against the merged whole."""
    files = chain(path)
    try:
        return OmegaConf.merge(*(config for _, config in files))
    except OmegaConfBaseException as exc:
        raise ConfigError(f"{path}: {exc}") from None


def load_or_empty(path: str) -> DictConfig:
    """:func:`load`, or an empty config when the file does not exist."""
    return load(path) if os.path.isfile(path) else OmegaConf.create({})


def select(config: DictConfig, key: str, default: Any = None) -> Any:
    """The value at dotted ``key``, interpolations resolved; ``default`` when the key is
    absent, None when it cannot be resolved here; mappings and lists as plain Python."""
    try:
        value = OmegaConf.select(config, key, default=default, throw_on_resolution_failure=True)
    except OmegaConfBaseException:
        return None
    if isinstance(value, (DictConfig,)) or OmegaConf.is_list(value):
        return to_container(value)
    return value


def to_container(config) -> Any:
    """A plain dict/list; interpolations that cannot be resolved here become None."""
    try:
        return OmegaConf.to_container(config, resolve=True)
    except OmegaConfBaseException:
        pass
    if OmegaConf.is_list(config):
        return [_value(config, i) for i in range(len(config))]
    return {k: _value(config, k) for k in config}


def _value(node, key):
    try:
        value = node[key]
    except OmegaConfBaseException:
        return None
    return to_container(value) if OmegaConf.is_config(value) else value


def experiment_path(dataset: str, root: str = REPO_ROOT) -> str:
    """``avdigits`` -> ``projects/mla/configs/avdigits.yaml`` (relative to ``root``, as runs
    and cell identities name it); a path to a YAML file is kept as given."""
    if dataset.endswith((".yaml", ".yml")):
        path = dataset
    else:
        path = os.path.join(CONFIG_DIR, f"{dataset}.yaml")
    full = path if os.path.isabs(path) else os.path.join(root, path)
    if not os.path.isfile(full) and os.path.isfile(path):  # a path given from here
        # the repository's configs keep their repository-relative name wherever the
        # package runs from (an installed copy has no projects/ of its own), so a cell's
        # identity is the same under `python -m` in the checkout and `mla-leaderboard`
        inside = not os.path.isabs(path) and os.path.normpath(path).startswith(CONFIG_DIR + os.sep)
        return path if inside else os.path.abspath(path)
    if not os.path.isfile(full):
        folder = os.path.join(root, CONFIG_DIR)
        known = (
            sorted(
                f[:-5]
                for f in os.listdir(folder)
                if f.endswith(".yaml") and f not in NOT_EXPERIMENTS
            )
            if os.path.isdir(folder)
            else []
        )
        raise FileNotFoundError(
            f"no experiment config for dataset {dataset!r}: {full} does not exist "
            f"(known: {', '.join(known) or 'none'})"
        )
    return path


def full_path(config: str, root: str = REPO_ROOT) -> str:
    """``config`` as a path to read: under ``root``, else (an installed package run from
    the checkout) from the working directory."""
    if os.path.isabs(config):
        return config
    joined = os.path.join(root, config)
    if not os.path.exists(joined) and os.path.exists(config):
        return os.path.abspath(config)
    return joined
