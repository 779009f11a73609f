"""Runs as records: the run folder, the save_dir lock, the config snapshot, the variant,
and the checks a resume makes before it trusts a save_dir (docs/reliability.md "Runs as
records and resume checks").

- **Run folder.**  With ``env.save_dir`` left at MMF's default (``${oc.env:MMF_SAVE_DIR,
  ./save}`` in mla_bridge/defaults.yaml, MMF_SAVE_DIR unset) each run gets its own folder
  ``./save/<dataset>/<model>/<YYYYmmdd-HHMMSS>-<hash>``, ``<hash>`` the first 8 hex digits
  of the sha256 of the run's result-affecting config (:func:`result_config`).  An explicit
  ``env.save_dir`` (or MMF_SAVE_DIR) is used as is.  ``checkpoint.resume`` with the
  default resumes the newest folder of that dataset and model whose hash is this
  config's and that holds a checkpoint, or starts a new one when there is none.
- **Lock.**  ``fcntl.flock`` on ``<save_dir>/.lock``, held for the life of the process
  (rank 0 only): a second writer fails at start, naming the dir and the pid that holds it;
  a dead process's lock is released by the kernel.  A run started by the leaderboard
  inherits the leaderboard's locked descriptor of the same file and uses it.
- **Snapshot.**  ``config.yaml`` (the resolved config) and ``overrides.yaml`` (the
  command-line options) are written atomically at start of a training run.
- **Variant.**  The ``model_config.<model>`` switches that differ from the model's YAML
  (mla_plugin/configs/models/<model>.yaml), e.g. ``{"hgm": "off"}``, label
  ``mla[hgm=off]``.
- **Resume checks.**  The saved config is compared with the new one (every key but
  :data:`RESUME_MAY_CHANGE`); a save_dir with best.ckpt but no current.ckpt, and an
  unreadable checkpoint, are refused with how to proceed.
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import json
import os
import time
from typing import Any

import torch
import yaml
from omegaconf import DictConfig, OmegaConf

from mla_plugin.utils.io import atomic_write_text
from mla_plugin.utils.variants import flatten, switches, variant_name

LOCK_NAME = ".lock"
CONFIG_NAME = "config.yaml"
OVERRIDES_NAME = "overrides.yaml"
DEFAULT_SAVE_DIR = "${oc.env:MMF_SAVE_DIR, ./save}"

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


# -------------------------------------------------------------------- run folder
def save_dir_is_default(config: DictConfig) -> bool:
    """``env.save_dir`` is MMF's default interpolation and MMF_SAVE_DIR is unset."""
    raw = OmegaConf.to_container(config.env, resolve=False).get("save_dir")
    return raw == DEFAULT_SAVE_DIR and "MMF_SAVE_DIR" not in os.environ


def run_folder(config: DictConfig, dataset: str, resume: bool) -> tuple[str, str]:
    """The default run folder for ``config`` and how it was chosen (``new`` or
    ``resumed``): with ``resume`` the newest ``<stamp>-<hash>`` folder of this config's
    hash that holds a checkpoint, else a new one (created here, so two runs started in the same second
    get two folders)."""
    root = os.path.abspath(os.path.join(str(config.env.save_dir), dataset, str(config.model)))
    digest = config_hash(resolved(config))
    if resume:
        found = sorted(glob.glob(os.path.join(glob.escape(root), f"*-{digest}")))
        found = [d for d in found if any(_has(d, n) for n in ("current.ckpt", "best.ckpt"))]
        if found:
            return found[-1], "resumed"
    os.makedirs(root, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1, 1000):
        path = os.path.join(root, f"{stamp}-{digest}" if n == 1 else f"{stamp}.{n}-{digest}")
        try:
            os.mkdir(path)
            return path, "new"
        except FileExistsError:
            continue
    raise RunRecordError(f"{root}: no free run folder name for {stamp}-{digest}")


def _has(folder: str, name: str) -> bool:
    return os.path.isfile(os.path.join(folder, name))


# -------------------------------------------------------------------------- lock
_HELD: dict[str, int] = {}
"""Lock files this process holds, by real path -> descriptor.  Re-entrant within a
process (a trainer built again in the same process, as tests do, reuses the lock)."""


def _inherited(path: str, own_fd: int) -> int | None:
    """A descriptor this process inherited (from the leaderboard) of the same lock file,
    whose open file holds the flock; None when there is none."""
    st = os.fstat(own_fd)
    fd_dir = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"
    for name in os.listdir(fd_dir):
        fd = int(name)
        if fd == own_fd:
            continue
        try:
            other = os.fstat(fd)
        except OSError:
            continue
        if (other.st_dev, other.st_ino) != (st.st_dev, st.st_ino):
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # succeeds only for the holder
            return fd
        except OSError:
            continue
    return None


def lock_save_dir(save_dir: str) -> int:
    """Hold ``fcntl.flock`` on ``<save_dir>/.lock`` until the process ends; raise
    :class:`RunRecordError` naming the dir and the holder's pid when another process
    holds it."""
    os.makedirs(save_dir, exist_ok=True)
    path = os.path.join(save_dir, LOCK_NAME)
    key = os.path.realpath(path)
    if key in _HELD:
        return _HELD[key]
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        inherited = _inherited(path, fd)
        if inherited is None:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunRecordError(
                f"env.save_dir {save_dir} is in use: process {holder} holds {path}. "
                "Two runs must not write into one save_dir: wait for that run to end, or "
                "choose another env.save_dir (or leave it unset for a new run folder)"
            ) from None
        os.close(fd)
        fd = inherited  # the leaderboard's lock, held through the inherited descriptor
    else:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
    _HELD[key] = fd
    return fd


def move_log_files(writer: Any, old_dir: str, new_dir: str) -> list[str]:
    """Point the file handlers of MMF's ``Logger`` (``writer``; built by ``mmf_run``
    before the trainer, so on MMF's default save_dir) that write under ``old_dir`` at the
    same files under ``new_dir`` (``train.log``, ``logs/train_<time>.log``); a file left
    empty in ``old_dir`` is removed.  Returns the new paths."""
    import logging

    old_root = os.path.abspath(old_dir) + os.sep
    new_root = os.path.abspath(new_dir)
    loggers = {
        id(lg): lg
        for lg in (getattr(writer, a, None) for a in ("_logger", "_warnings_logger"))
        if isinstance(lg, logging.Logger)
    }
    moved: dict[str, logging.FileHandler] = {}
    for lg in loggers.values():
        for handler in list(lg.handlers):
            path = getattr(handler, "baseFilename", None)
            if not isinstance(handler, logging.FileHandler) or not path:
                continue
            rel = path[len(old_root) :] if path.startswith(old_root) else ""
            if rel != "train.log" and not (
                rel.startswith("logs" + os.sep) and rel.count(os.sep) == 1
            ):
                continue  # not one of the Logger's own files of old_dir
            if path not in moved:
                target = os.path.join(new_root, rel)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                replacement = logging.FileHandler(target, mode="a")
                replacement.setFormatter(handler.formatter)
                replacement.setLevel(handler.level)
                moved[path] = replacement
            lg.removeHandler(handler)
            handler.close()
            lg.addHandler(moved[path])
    for path in moved:
        if os.path.isfile(path) and os.path.getsize(path) == 0:
            os.unlink(path)
    try:
        os.rmdir(os.path.join(old_root, "logs"))  # only when left empty
    except OSError:
        pass
    return [h.baseFilename for h in moved.values()]


# ---------------------------------------------------------------------- snapshot
def write_snapshot(save_dir: str, config: dict, overrides: list[str]) -> None:
    """``config.yaml`` (resolved) and ``overrides.yaml`` (command-line options)."""
    atomic_write_text(
        yaml.safe_dump(config, sort_keys=False, default_flow_style=False),
        os.path.join(save_dir, CONFIG_NAME),
    )
    atomic_write_text(
        yaml.safe_dump([str(o) for o in overrides], default_flow_style=False),
        os.path.join(save_dir, OVERRIDES_NAME),
    )


def saved_config(save_dir: str) -> tuple[dict | None, str | None]:
    """The saved config of a save_dir and where it came from: config.yaml, else the
    config of current.ckpt or best.ckpt (runs from before config.yaml); (None, None)."""
    path = os.path.join(save_dir, CONFIG_NAME)
    if os.path.isfile(path):
        with open(path) as f:
            try:
                return yaml.safe_load(f), path
            except yaml.YAMLError as e:
                raise RunRecordError(
                    f"{path} is not valid YAML ({e}); it records the run being resumed. "
                    "Restore it, or start a fresh run in another env.save_dir"
                ) from None
    for name in ("current.ckpt", "best.ckpt"):
        ckpt = os.path.join(save_dir, name)
        if os.path.isfile(ckpt):
            state = read_checkpoint(ckpt)
            if isinstance(state, dict) and isinstance(state.get("config"), dict):
                return state["config"], ckpt
    return None, None


def read_checkpoint(path: str) -> Any:
    """``torch.load`` of ``path`` on the CPU; an unreadable file is a
    :class:`RunRecordError` naming it and how to recover."""
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # truncated zip, bad pickle, ...
        name = os.path.basename(path)
        other = (
            "resume from best.ckpt instead (checkpoint.resume_best=True: its weights, counts "
            "and selection; optimizer, scheduler, hooks and RNGs start afresh)"
            if name == "current.ckpt"
            else "delete it to let the run select afresh from here on, or resume an earlier copy"
        )
        raise RunRecordError(
            f"checkpoint {path} is truncated or corrupt and cannot be read "
            f"({type(e).__name__}: {str(e)[:200]}). To recover: {other}; or start a fresh "
            "run in another env.save_dir"
        ) from None


def check_resume(save_dir: str, config: dict, resume_best: bool) -> list[str]:
    """Before a ``checkpoint.resume``: refuse a changed config, best.ckpt without
    current.ckpt, and an unreadable checkpoint (:class:`RunRecordError`).  Returns the
    lines to log (what the resume will do)."""
    current, best = (os.path.join(save_dir, n) for n in ("current.ckpt", "best.ckpt"))
    old, source = saved_config(save_dir)
    if old is not None:
        diffs = config_differences(old, config)
        if diffs:
            raise RunRecordError(
                f"checkpoint.resume: the config differs from the one {save_dir} was "
                f"trained with ({source}) in keys that affect results (old -> new):\n  "
                + "\n  ".join(diffs)
                + "\nResume with the saved values, or start a fresh run in another "
                "env.save_dir (or leave env.save_dir unset for a new run folder)"
            )
    has_current, has_best = os.path.isfile(current), os.path.isfile(best)
    if has_best and not has_current and not resume_best:
        raise RunRecordError(
            f"checkpoint.resume: {save_dir} holds best.ckpt but no current.ckpt, so the run "
            "cannot continue exactly, and starting afresh would overwrite best.ckpt. "
            "Either continue from the selected weights with checkpoint.resume_best=True "
            "(optimizer, scheduler, hooks and RNGs start afresh), or start a fresh run in "
            "another env.save_dir (or leave it unset for a new run folder)"
        )
    if resume_best and not has_best:
        raise RunRecordError(
            f"checkpoint.resume_best: {save_dir} holds no best.ckpt"
            + (" (it has current.ckpt: drop checkpoint.resume_best)" if has_current else "")
        )
    for path, present in ((current, has_current), (best, has_best)):
        if present:
            read_checkpoint(path)
    if has_current or has_best:
        return []
    return [f"checkpoint.resume: {save_dir} holds no checkpoint yet; starting the run afresh"]


# ----------------------------------------------------------------------- variant
def variant(config: dict, model: str) -> dict[str, Any]:
    """``{key: value}`` of the ``model_config.<model>`` switches that differ from the
    model's YAML defaults (:func:`mla_plugin.utils.variants.switches`)."""
    return switches(model, (config.get("model_config") or {}).get(model) or {})


class RecordsMixin:
    """The trainer's side of this module: :meth:`_open_record` at the start of
    ``load()``, :meth:`_record_fields` in ``metrics.json``."""

    def _open_record(self) -> str:
        """Choose the save_dir, lock it, check a resume against it and write the config
        snapshot (rank 0; every rank gets the same save_dir, or the same error)."""
        import torch.distributed as dist
        from mmf.common.registry import registry
        from mmf.utils.configuration import get_mmf_env
        from omegaconf import open_dict

        cfg, ckpt = self.config, self.config.checkpoint
        train = "train" in self.run_type
        answer: list = [None, None, []]  # save_dir, error, lines to log
        if self.rank == 0:
            try:
                save_dir = get_mmf_env(key="save_dir")
                if save_dir_is_default(cfg):
                    dataset = str(cfg.datasets).split(",")[0]
                    default = save_dir
                    save_dir, how = run_folder(cfg, dataset, bool(ckpt.resume) and train)
                    lock_save_dir(save_dir)
                    move_log_files(self.writer, default, save_dir)
                    answer[2].append(f"run folder ({how}): {save_dir}")
                lock_save_dir(save_dir)  # (re-entrant: held already for a run folder)
                answer[0] = save_dir
            except RunRecordError as e:
                answer[1] = str(e)
        if self.world > 1:
            dist.broadcast_object_list(answer, src=0)
        if answer[1]:
            raise RunRecordError(answer[1])
        save_dir = answer[0]
        with open_dict(cfg.env):
            cfg.env.save_dir = save_dir  # get_mmf_env and everything after it see it
        self.record_config = resolved(cfg)
        self.variant = variant(self.record_config, str(cfg.model))
        if self.rank == 0 and train:
            try:
                if ckpt.resume:
                    answer[2] += check_resume(save_dir, self.record_config, bool(ckpt.resume_best))
                configuration = registry.get("configuration", no_warning=True)
                opts = getattr(getattr(configuration, "args", None), "opts", None) or []
                write_snapshot(save_dir, self.record_config, list(opts))
            except RunRecordError as e:
                answer[1] = str(e)
        if self.world > 1:
            dist.broadcast_object_list(answer, src=0)
        if answer[1]:
            raise RunRecordError(answer[1])
        for line in answer[2]:
            self.writer.write(line)
        return save_dir

    def _record_fields(self) -> dict:
        """``variant`` (the switches that differ from the model's defaults) and
        ``label`` (e.g. ``mla[hgm=off]``) for metrics.json."""
        model = str(self.config.model)
        return {"variant": self.variant, "label": variant_name(model, self.variant)}
