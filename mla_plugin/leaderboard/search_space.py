"""``--tune``'s search spaces and study storage: ``mla_plugin/configs/search.yaml`` (or
``--search-space``), checked before anything runs, as Optuna distributions and MMF
overrides; the Optuna storage URL (``--storage``, default ``sqlite:///OUT/tuning.db``)."""

from __future__ import annotations

import os
from importlib import resources

import yaml

from mla_plugin.leaderboard.cells import expand

DEFAULT_DB = "tuning.db"


def default_space_path() -> str:
    return str(resources.files("mla_plugin").joinpath("configs", "search.yaml"))


# ------------------------------------------------------------------ search spaces
def _check_param(path: str, where: str, spec) -> None:
    if not isinstance(spec, dict):
        raise ValueError(f"{path}: {where} must be a mapping ({{low, high}} or {{choices}})")
    if "choices" in spec:
        extra = set(spec) - {"choices"}
        if extra or not isinstance(spec["choices"], list) or not spec["choices"]:
            raise ValueError(f"{path}: {where}: expected {{choices: [a non-empty list]}}")
        return
    extra = set(spec) - {"low", "high", "log", "int"}
    if extra or "low" not in spec or "high" not in spec:
        raise ValueError(
            f"{path}: {where}: expected {{low, high}} (optional log, int) or {{choices}}, "
            f"got keys {sorted(spec)}"
        )
    try:
        low, high = float(spec["low"]), float(spec["high"])
    except (TypeError, ValueError):
        raise ValueError(f"{path}: {where}: low and high must be numbers") from None
    if not low < high or (spec.get("log") and low <= 0):
        raise ValueError(f"{path}: {where}: need low < high (and low > 0 with log), got {spec}")


def load_space(path: str | None = None) -> dict:
    """The ``search:`` section of ``path`` (default the packaged search.yaml), checked."""
    path = path or default_space_path()
    try:
        with open(path) as f:
            spec = (yaml.safe_load(f) or {}).get("search")
    except (OSError, yaml.YAMLError, AttributeError) as exc:
        raise ValueError(f"search space {path}: cannot read a `search:` mapping: {exc}") from None
    if not isinstance(spec, dict):
        raise ValueError(f"search space {path}: no `search:` mapping")
    known = {"sampler_seed", "startup_trials", "tuning_seeds", "shared", "methods"}
    if not known <= set(spec) <= known | {"pruning"}:
        raise ValueError(
            f"search space {path}: `search:` needs exactly the keys {sorted(known)} "
            "(and optionally `pruning`)"
        )
    pruning = spec.get("pruning") or {}
    if not isinstance(pruning, dict) or set(pruning) - {"startup_trials", "warmup_epochs"}:
        raise ValueError(
            f"search space {path}: pruning takes startup_trials and warmup_epochs, got {pruning}"
        )
    for key, value in pruning.items():
        if not isinstance(value, int) or value < 0:
            raise ValueError(f"search space {path}: pruning.{key} must be an integer >= 0")
    seeds = spec["tuning_seeds"]
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise ValueError(f"search space {path}: tuning_seeds must be a non-empty list of ints")
    for key in ("sampler_seed", "startup_trials"):
        if not isinstance(spec[key], int) or spec[key] < 0:
            raise ValueError(f"search space {path}: {key} must be an integer >= 0")
    for key, p in (spec["shared"] or {}).items():
        _check_param(path, f"shared.{key}", p)
    for method, params in (spec["methods"] or {}).items():
        for key, p in (params or {}).items():
            _check_param(path, f"methods.{method}.{key}", p)
    return spec


def method_space(space: dict, method: str) -> dict:
    """The parameter specs one method's study samples (``{method}`` expanded)."""
    params = dict(space["shared"] or {})
    params.update((space["methods"] or {}).get(method) or {})
    return {expand(k, method, ""): v for k, v in params.items()}


def distributions(params: dict) -> dict:
    import optuna.distributions as d

    out = {}
    for key, spec in params.items():
        if "choices" in spec:
            out[key] = d.CategoricalDistribution(spec["choices"])
        elif spec.get("int"):
            out[key] = d.IntDistribution(
                int(spec["low"]), int(spec["high"]), log=bool(spec.get("log"))
            )
        else:
            out[key] = d.FloatDistribution(
                float(spec["low"]), float(spec["high"]), log=bool(spec.get("log"))
            )
    return out


def as_overrides(params: dict) -> tuple:
    """A trial's parameters as MMF overrides, sorted (floats in full, as stored)."""
    return tuple(
        f"{k}={v!r}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(params.items())
    )


# ------------------------------------------------------------------ storage
def storage_url(storage: str | None, out: str) -> str:
    """``storage`` (a SQLAlchemy URL) or ``sqlite:///<out>/tuning.db``."""
    if not storage:
        return "sqlite:///" + os.path.abspath(os.path.join(out, DEFAULT_DB))
    return storage


def check_storage_url(url: str) -> str:
    """A clear error for a URL SQLAlchemy cannot parse (before anything runs)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        make_url(url)
    except ArgumentError:
        raise ValueError(
            f"--storage {url!r} is not a SQLAlchemy URL (e.g. sqlite:///runs/tuning.db, "
            "postgresql://user@host/db)"
        ) from None
    return url
