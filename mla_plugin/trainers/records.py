"""Runs as records (docs/reliability.md "Runs as records and resume checks"): the
result-affecting config and its hash, the lock and the variant.  The run folder and
:func:`~mla_plugin.trainers.run_folder.open_record` are in
:mod:`~mla_plugin.trainers.run_folder`, the snapshot and the resume checks in
:mod:`~mla_plugin.trainers.resume_checks`.

- **Lock.**  :func:`mla_plugin.utils.locks.acquire` on ``<save_dir>/.lock``, held for the
  life of the process (rank 0 only): a second writer fails at start, naming the dir and
  the pid that holds it; a dead process's lock is released by the kernel.  A run started
  by the leaderboard adopts the leaderboard's descriptor, named by ``MLA_RUN_LOCK_FD``.
- **Variant.**  The ``model_config.<model>`` switches that differ from the model's YAML
  (mla_plugin/configs/models/<model>.yaml), e.g. ``{"hgm": "off"}``, labelled by
  :func:`mla_plugin.utils.variants.variant_name`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mla_plugin.utils import locks
from mla_plugin.utils.variants import flatten, switches, variant_name

RESUME_MAY_CHANGE = (
    # where things go, not what is computed
    "env.save_dir",
    "env.log_dir",
    "env.report_dir",
    "env.tensorboard_logdir",
    "env.user_dir",
    "env.cache_dir",
    "env.dataset_zoo",
    "env.model_zoo",
    # how the resume itself is asked for
    "checkpoint.*",
    "config",
    "config_override",
    "run_type",
    # logging and progress
    "training.log_interval",
    "training.progress_bar",
    "training.tensorboard",
    "training.logger_level",
    "training.log_format",
    "training.log_detailed_config",
    "training.should_not_log",
    "training.stdout_capture",
    "training.verbose_dump",
    "training.experiment_name",
    # loading speed: the sampler and the DataLoader's generator fix the order
    "training.num_workers",
    "training.pin_memory",
    "training.fast_read",
    # when checkpoints are written (current.ckpt's content at a given update is the same)
    "training.checkpoint_interval",
    # how long to train: a resume may extend (or shorten) a run; the schedulers step by
    # epoch/update, so a run resumed to N epochs equals one that ran N epochs straight
    "training.max_epochs",
    "training.max_updates",
    # process placement
    "device_id",
    "start_rank",
    "distributed.rank",
    "distributed.init_method",
    "distributed.port",
    "distributed.no_spawn",
    "distributed.backend",
    "distributed.world_size",
    # set by the trainer from the model's name and the train split
    "model_config.*.model",
    "model_config.*.num_train_samples",
)
"""Keys a resume may change (``*`` matches one key or a whole section); every other key
of the resolved config must be equal to the saved one."""


class RunRecordError(RuntimeError):
    """A save_dir that cannot be used as asked (locked, changed config, missing or
    corrupt checkpoint)."""


# ------------------------------------------------------------------ config views
def may_change(key: str) -> bool:
    """Whether ``key`` (dotted) is in :data:`RESUME_MAY_CHANGE`."""
    parts = key.split(".")
    for pattern in RESUME_MAY_CHANGE:
        pp = pattern.split(".")
        if pp[-1] == "*" and len(pp) == 2 and parts[0] == pp[0]:
            return True  # a whole section
        if len(pp) == len(parts) and all(p in ("*", k) for p, k in zip(pp, parts, strict=True)):
            return True
    return False


def resolved(config: DictConfig) -> dict:
    return OmegaConf.to_container(config, resolve=True)


def result_config(config: dict) -> dict[str, Any]:
    """The flattened keys of a resolved config that affect results (all but
    :data:`RESUME_MAY_CHANGE`)."""
    return {k: v for k, v in flatten(config).items() if not may_change(k)}


def config_hash(config: dict) -> str:
    text = json.dumps(result_config(config), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def config_differences(old: dict, new: dict) -> list[str]:
    """``key: old -> new`` for each result-affecting key that differs (``<absent>`` for a
    key only one side has)."""
    a, b = result_config(old), result_config(new)
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key, "<absent>"), b.get(key, "<absent>")
        if va != vb:
            out.append(f"{key}: {va!r} -> {vb!r}")
    return out


def lock_save_dir(save_dir: str) -> int:
    """Hold the lock of ``save_dir`` (:func:`mla_plugin.utils.locks.acquire`) until the
    process ends; :class:`RunRecordError` naming the dir, the holder's pid and what to do
    when another process holds it."""
    try:
        return locks.acquire(save_dir)
    except locks.LockHeld as e:
        raise RunRecordError(
            f"env.save_dir {save_dir} is in use: process {e.holder} holds {e.path}. "
            "Two runs must not write into one save_dir: wait for that run to end, or "
            "choose another env.save_dir (or leave it unset for a new run folder)"
        ) from None


def variant(config: dict, model: str) -> dict[str, Any]:
    """``{key: value}`` of the ``model_config.<model>`` switches that differ from the
    model's YAML defaults (:func:`mla_plugin.utils.variants.switches`)."""
    return switches(model, (config.get("model_config") or {}).get(model) or {})


def record_fields(config, variant_switches: dict) -> dict:
    """``variant`` (the switches that differ from the model's defaults) and ``label``
    (:func:`~mla_plugin.utils.variants.variant_name`) for metrics.json."""
    model = str(config.model)
    return {"variant": variant_switches, "label": variant_name(model, variant_switches)}
