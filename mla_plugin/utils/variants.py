"""The one name of a method variant: a method run with switches that differ from its
model YAML's defaults, e.g. MLA without head gradient modification, ``mla[hgm=off]``.

The trainer writes it into ``metrics.json`` (``variant`` and ``label``) and the
leaderboard names its runs and columns with it, both through :func:`variant_name`.  This
module reads the model YAMLs (``mla_plugin/configs/models/<model>.yaml``) with PyYAML
only: the leaderboard plans without torch or MMF.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import yaml

MODELS_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "configs", "models")


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a.b.c": leaf}`` of a nested dict (lists are leaves)."""
    if isinstance(tree, dict) and tree:
        out = {}
        for k, v in tree.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: tree}


def model_defaults(model: str) -> dict[str, Any]:
    """The literal (non-interpolated) keys of ``model_config.<model>`` in the model's YAML;
    {} for a model without one (e.g. MMF's own)."""
    path = os.path.join(MODELS_DIR, f"{model}.yaml")
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        raw = yaml.safe_load(f) or {}
    section = (raw.get("model_config") or {}).get(model) or {}
    return {
        k: v for k, v in flatten(section).items() if not (isinstance(v, str) and v.startswith("${"))
    }


def switches(model: str, model_config: Mapping[str, Any]) -> dict[str, Any]:
    """``{key: value}`` of the switches in ``model_config`` (the run's
    ``model_config.<model>`` section, nested or dotted) that differ from the model's YAML
    defaults, in key order."""
    defaults = model_defaults(model)
    run = flatten(dict(model_config))
    return {k: run[k] for k in sorted(defaults) if k in run and run[k] != defaults[k]}


def _short(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return str(v).lower()
    return str(v)


def variant_name(model: str, changed: Mapping[str, Any]) -> str:
    """``mla`` or ``mla[fusion=mean,hgm=off]``: the model and its changed switches
    (:func:`switches`), in the order given."""
    if not changed:
        return model
    return model + "[" + ",".join(f"{k}={_short(v)}" for k, v in changed.items()) + "]"
