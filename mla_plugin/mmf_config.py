"""Checks of MMF's own config sections as the plugin's trainer reads them, before anything
is built (called from :func:`mla_plugin.config_validation.validate`).

The schema of ``training``, ``evaluation``, ``checkpoint``, ``optimizer``, ``scheduler``,
``env`` and ``distributed`` is MMF's defaults file (``get_default_config_path``: the
bridge's ``mla_bridge/defaults.yaml`` on this stack, the one home of MMF's defaults),
with the plugin trainer's own ``training`` keys from ``mla_plugin/configs/trainer.yaml``:
an unknown key or a value of another kind than its default is an error naming the key
(and, for a typo, the valid keys).  Beyond that:

* ``optimizer.type`` must be a ``torch.optim`` class or one registered with MMF's
  ``registry.register_optimizer``; ``optimizer.params`` are checked against its
  constructor's signature, ``scheduler.type``/``scheduler.params`` likewise against the
  registered scheduler class; an ``optimizer.params`` key set to null is dropped first
  (the optimizer's own default), so a preset can change the type: SGD's ``momentum:
  null`` for AdamW (``presets/balancebenchmark.yaml``);
* the keys MMF defines that the plugin's trainer does not use (:data:`UNUSED`) must keep
  their default: another value is refused, with the reason;
* value ranges (:func:`check_ranges`): batch size, epochs, updates, intervals, lr, step
  size, ...
"""

import copy
import functools
import inspect
import os
from collections.abc import Mapping

import torch
from mmf.common.registry import registry
from mmf.utils import configuration
from omegaconf import OmegaConf, open_dict

from mla_plugin.config_schema import ConfigError, check_section, defaults_of, resolved

TRAINER_DEFAULTS = os.path.join(os.path.dirname(__file__), "configs", "trainer.yaml")

SECTIONS = ("training", "evaluation", "checkpoint", "optimizer", "scheduler", "env", "distributed")
"""MMF's sections the plugin's trainer (or MMF on its behalf) reads."""

# key -> why the plugin's trainer does not honour it (a value other than MMF's default is
# refused with this reason)
UNUSED = {
    "training.fast_read": "the plugin's trainer builds its datasets itself and never runs "
    "MMF's fast-read pass",
    "training.dataset_size_proportional_sampling": "the plugin's trainer trains on one "
    "dataset (the first of `datasets`)",
    "training.evaluate_metrics": "the plugin's trainer computes its metrics at evaluation "
    "only (training.log_interval lines show the loss)",
    "training.verbose_dump": "only MMF's own dataset loader reads it",
    "training.experiment_name": "only MMF's base_trainer reads it (save to a named folder "
    "with env.save_dir instead)",
    "evaluation.metrics": "the plugin's trainer computes accuracy (and ROC-AUC for binary "
    "tasks) itself, whatever is listed",
    "optimizer.allow_unused_parameters": "the plugin's trainer builds its optimizer over "
    "all the model's parameters",
    "optimizer.enable_state_sharding": "optimizer state sharding (fairscale OSS) is not "
    "supported by the plugin's trainer",
    "checkpoint.resume_pretrained": "the plugin's trainer resumes with checkpoint.resume / "
    "resume_file / resume_best only",
    "checkpoint.resume_zoo": "the plugin's trainer loads no model-zoo checkpoints",
    "checkpoint.zoo_config_override": "the plugin's trainer loads no model-zoo checkpoints",
    "checkpoint.pretrained_state_mapping": "the plugin's trainer loads whole state dicts only",
    "checkpoint.max_to_keep": "the plugin's trainer keeps current.ckpt and best.ckpt only",
    "checkpoint.save_git_details": "the plugin's trainer records no git details",
    "checkpoint.reset": "the plugin's trainer resumes the optimizer and counts with the "
    "weights (resume_best restores the weights and counts only)",
}

TRAINER_CHECKED = (
    "precision",
    "fp16",
    "channels_last",
    "pin_memory",
    "progress_bar",
    "log_interval",
    "device",
    "grad_sync",
    "callbacks",
)
"""``training`` keys whose value :class:`~mla_plugin.trainers.multimodal.MultimodalTrainer`
checks itself (``progress_bar`` is ``auto`` or a bool); only their names are checked here."""

CLIP_NORM_MODES = ("all",)
"""``training.clip_norm_mode`` values honoured: ``all`` (every parameter's gradient, one
norm); MMF's ``question`` mode needs a model with a question encoder."""


def _optimizer_classes() -> dict:
    torch_ones = {
        name: cls
        for name, cls in vars(torch.optim).items()
        if inspect.isclass(cls)
        and issubclass(cls, torch.optim.Optimizer)
        and cls is not torch.optim.Optimizer
    }
    return {**torch_ones, **registry.mapping["optimizer_name_mapping"]}


def optimizer_class(name):
    """The class MMF's ``build_optimizer`` would use for ``optimizer.type``; an unknown
    type is an error listing the known ones."""
    if not isinstance(name, str):
        raise ConfigError(
            f"optimizer.type = {name!r}: expected the name of a torch.optim class or of an "
            "optimizer registered with registry.register_optimizer"
        )
    cls = getattr(torch.optim, name, None) if hasattr(torch.optim, name) else None
    cls = cls or registry.get_optimizer_class(name)
    if cls is None:
        raise ConfigError(
            f"optimizer.type = {name!r} is neither a torch.optim class nor a registered "
            f"optimizer; known: {', '.join(sorted(_optimizer_classes()))}"
        )
    return cls


def scheduler_class(name):
    if not isinstance(name, str) or registry.get_scheduler_class(name) is None:
        known = sorted(registry.mapping["scheduler_name_mapping"])
        raise ConfigError(
            f"scheduler.type = {name!r} is not a registered scheduler; known: {', '.join(known)}"
        )
    return registry.get_scheduler_class(name)


def check_params(path: str, params, cls, skip: int) -> None:
    """``params`` must be keyword arguments of ``cls``'s constructor (after its first
    ``skip`` positional ones: the parameters or the optimizer); a class whose ``__init__``
    or ``__new__`` takes ``**kwargs`` accepts any."""
    if params is None:
        return
    if not isinstance(params, Mapping):
        raise ConfigError(
            f"config key {path} = {params!r} is a {type(params).__name__}; expected a mapping"
        )
    signature = inspect.signature(cls.__init__)
    names = [p for p in signature.parameters.values() if p.name != "self"][skip:]
    # a class built by __new__ (MMF's warmup_linear: transformers' schedule functions)
    new = [] if cls.__new__ is object.__new__ else inspect.signature(cls.__new__).parameters
    if any(p.kind is p.VAR_KEYWORD for p in [*names, *dict(new).values()]):
        return
    valid = [p.name for p in names if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for key in params:
        if key not in valid:
            raise ConfigError(
                f"unknown config key {path}.{key}: {cls.__name__} takes {', '.join(valid)}"
            )


def _integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _require(ok: bool, key: str, value, expected: str) -> None:
    if not ok:
        raise ConfigError(f"config key {key} = {value!r}: expected {expected}")


def check_ranges(sections: Mapping) -> None:
    """Value ranges of the loop's keys, checked at load time (before any data is read)."""
    t = sections["training"]
    for key, low in (("batch_size", 1), ("num_workers", 0), ("checkpoint_interval", 0)):
        _require(
            _integer(t[key]) and t[key] >= low, f"training.{key}", t[key], f"an integer >= {low}"
        )
    for key in ("max_epochs", "max_updates", "evaluation_interval"):
        value = t[key]
        _require(
            value is None or (_integer(value) and value >= 1),
            f"training.{key}",
            value,
            "an integer >= 1, or null",
        )
    if t["max_epochs"] is None and t["max_updates"] is None:
        raise ConfigError(
            "training.max_epochs and training.max_updates are both null: set one of them "
            "(max_epochs wins when both are set, as in MMF)"
        )
    _require(
        _integer(t["seed"]) or t["seed"] is None,
        "training.seed",
        t["seed"],
        "an integer (-1 or null: random)",
    )
    _require(
        t["clip_norm_mode"] in CLIP_NORM_MODES,
        "training.clip_norm_mode",
        t["clip_norm_mode"],
        f"one of {list(CLIP_NORM_MODES)} (the only mode the plugin's trainer implements)",
    )
    _require(
        _number(t["max_grad_l2_norm"]) and t["max_grad_l2_norm"] > 0,
        "training.max_grad_l2_norm",
        t["max_grad_l2_norm"],
        "a number > 0",
    )
    stop = t["early_stop"]
    _require(
        _integer(stop["patience"]) and stop["patience"] >= 0,
        "training.early_stop.patience",
        stop["patience"],
        "an integer >= 0 (optimizer updates without improvement)",
    )
    params = sections["optimizer"].get("params") or {}
    for key in ("lr", "weight_decay", "momentum"):
        if key in params:
            value, low = params[key], "> 0" if key == "lr" else ">= 0"
            ok = _number(value) and (value > 0 if key == "lr" else value >= 0)
            _require(ok, f"optimizer.params.{key}", value, f"a number {low}")
    sched = sections["scheduler"].get("params") or {}
    if "step_size" in sched:
        value = sched["step_size"]
        _require(
            _integer(value) and value >= 1,
            "scheduler.params.step_size",
            value,
            "an integer >= 1 (epochs)",
        )
    if "gamma" in sched:
        value = sched["gamma"]
        _require(_number(value) and value > 0, "scheduler.params.gamma", value, "a number > 0")


def _check_unused(sections: Mapping, defaults: Mapping) -> None:
    for key, why in UNUSED.items():
        section, name = key.split(".", 1)
        if name not in sections[section]:
            continue
        value, default = sections[section][name], defaults[section][name]
        if value != default:
            raise ConfigError(
                f"config key {key} = {value!r} is not honoured: {why}. Leave it at MMF's "
                f"default {default!r}"
            )


@functools.cache
def _default_section(name: str) -> Mapping:
    section = dict(defaults_of(configuration.get_default_config_path(), name))
    if name in ("training", "checkpoint"):  # the plugin trainer's own keys
        section.update(defaults_of(TRAINER_DEFAULTS, name))
    return section


def _mmf_defaults(name: str) -> Mapping:
    """A fresh copy of section ``name`` of MMF's defaults file (read once), with
    ``training`` and ``checkpoint`` completed by ``mla_plugin/configs/trainer.yaml``."""
    return copy.deepcopy(_default_section(name))


def drop_null_optimizer_params(config) -> None:
    """Remove the ``optimizer.params`` keys set to null (left at the optimizer's default)."""
    params = (config.get("optimizer") or {}).get("params")
    if not OmegaConf.is_config(params):
        return
    with open_dict(params):
        for key in [k for k, v in params.items() if v is None]:
            params.pop(key)


def validate_mmf_sections(config) -> None:
    """Check MMF's sections of a run's config (see the module docstring)."""
    drop_null_optimizer_params(config)
    sections, defaults = {}, {}
    for name in SECTIONS:
        node = config.get(name)
        sections[name] = {} if node is None else resolved(name, node)
        defaults[name] = _mmf_defaults(name)
        schema = dict(defaults[name])
        if name == "training":  # the trainer checks these itself, with their own hints
            schema.update(dict.fromkeys(TRAINER_CHECKED))
        if name in ("optimizer", "scheduler"):  # their class decides type and params
            schema.update({"type": None, "params": None})
        open_keys = ("params",) if name in ("optimizer", "scheduler") else ()
        check_section(name, sections[name], schema, open_keys)
    optimizer = sections["optimizer"]
    if "type" not in optimizer:
        raise ConfigError("optimizer.type is not set: name a torch.optim class, e.g. SGD or Adam")
    check_params("optimizer.params", optimizer.get("params"), optimizer_class(optimizer["type"]), 1)
    scheduler = sections["scheduler"]
    if sections["training"]["lr_scheduler"] and "type" in scheduler:
        check_params(
            "scheduler.params", scheduler.get("params"), scheduler_class(scheduler["type"]), 1
        )
    _check_unused(sections, defaults)
    check_ranges(sections)
