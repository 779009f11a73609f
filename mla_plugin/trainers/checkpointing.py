"""Checkpointing for the multimodal trainer: the resumable state, atomic saves, resume and
loading, and the ``checkpoint`` callback (Lightning's ``ModelCheckpoint``, MMF main's
``CheckpointCallback``) that writes ``current.ckpt``.

``current.ckpt`` holds everything needed to continue exactly: model, optimizer,
scheduler, hook state keyed by hook name (MLA's P, QMF's history, OGM-GE's noise
generators), each callback's state keyed by its name (early stopping's), the position in
the epoch and the stage, the best selection so far, the RNG states and the resolved
config.  ``best.ckpt`` holds only what using the selected model needs
(:data:`BEST_KEYS`): its weights, the selection (``best``: value, update, epoch), the
counts at which it was selected and the config -- no optimizer, hook or RNG state, so it
is about half the size of ``current.ckpt`` with SGD and momentum (docs/reliability.md).
Both are written atomically.
"""

import os
import random
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from omegaconf import OmegaConf

from mla_plugin.core.hooks import TrainingHook, hook_names, register_hook
from mla_plugin.trainers.context import RunContext
from mla_plugin.trainers.resume_checks import reason
from mla_plugin.utils.io import WriteError, atomic_write, remove_stale_temps

BEST_KEYS = ("model", "counts", "best", "config")
"""What ``best.ckpt`` holds (weights only plus what selection and prediction need)."""


def atomic_torch_save(obj, path: str) -> None:
    """``torch.save`` of ``obj`` to ``path``, written whole or not at all."""
    atomic_write(path, lambda f: torch.save(obj, f))


def capture_rng() -> dict[str, Any]:
    """The torch (CPU), numpy and python RNG states."""
    return {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }


def restore_rng(state: dict[str, Any]) -> None:
    """Set the RNGs to a state from :func:`capture_rng`."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def hook_states(hooks: Sequence[TrainingHook]) -> dict[str, Any]:
    """``{hook.name: hook.state_dict()}``, in the hooks' order."""
    return {name: hook.state_dict() for name, hook in zip(hook_names(hooks), hooks, strict=False)}


def load_hook_states(hooks: Sequence[TrainingHook], states: dict[str, Any], path: str) -> None:
    """Restore each hook from ``states[hook.name]``; the names must match exactly."""
    names = hook_names(hooks)
    if not isinstance(states, dict) or sorted(states) != sorted(names):
        saved = (
            sorted(states) if isinstance(states, dict) else f"{len(states)} unnamed (by position)"
        )
        raise ValueError(
            f"checkpoint {path} holds state for the hooks {saved}, "
            f"but the model's hooks are {names}"
        )
    for name, hook in zip(names, hooks, strict=False):
        hook.load_state_dict(states[name])


def _counts(ctx: RunContext) -> dict[str, Any]:
    return {
        "epoch": ctx.epoch,
        "batch_in_epoch": ctx.batch_in_epoch,
        "iteration": ctx.iteration,
        "num_updates": ctx.num_updates,
    }


def resolved_config(ctx: RunContext) -> dict:
    """The run's config as plain data, resolved once (it does not change while training;
    resolving it at every checkpoint cost about 2 % of a small run)."""
    if ctx.resolved_config is None:
        ctx.resolved_config = OmegaConf.to_container(ctx.config, resolve=True)
    return ctx.resolved_config


def full_state(ctx: RunContext) -> dict[str, Any]:
    """The state of ``current.ckpt`` (see the module docstring)."""
    return {
        "model": ctx.model.state_dict(),
        "optimizer": ctx.optimizer.state_dict(),
        "lr_scheduler": ctx.lr_scheduler.state_dict() if ctx.lr_scheduler else None,
        "hooks": hook_states(ctx.hooks),
        "counts": {**_counts(ctx), "skipped_steps": ctx.skipped_steps},
        "grad_scaler": ctx.amp.state_dict(),  # fp16's loss scale; {} otherwise
        "best": dict(ctx.best),
        "loop": {"last_eval_update": ctx.last_eval_update},
        "callbacks": hook_states(ctx.callbacks),  # by name: early stopping's, the stages'
        "rng": capture_rng(),
        "config": resolved_config(ctx),
    }


def best_state(ctx: RunContext) -> dict[str, Any]:
    """The weights-only state of ``best.ckpt`` (:data:`BEST_KEYS`)."""
    full = {
        "model": ctx.model.state_dict(),
        "counts": _counts(ctx),
        "best": dict(ctx.best),
        "config": resolved_config(ctx),
    }
    return {k: full[k] for k in BEST_KEYS}


_SAVED: dict[str, dict] = {}
"""The counts of the last ``current.ckpt`` this process wrote, by path (for the message of
a failed write)."""


def write_failed(ctx: RunContext, error: WriteError) -> WriteError:
    """``error`` (a failed write of the run's files) with which checkpoint is intact and
    how to go on from it."""
    current = os.path.join(ctx.save_dir, "current.ckpt")
    if os.path.isfile(current):
        counts = _SAVED.get(current)
        at = (
            f" (epoch {counts['epoch']}, batch {counts['batch_in_epoch']}, update "
            f"{counts['num_updates']})"
            if counts
            else ""
        )
        way = (
            f"the earlier checkpoint {current}{at} is intact: free space, then run the same "
            "command with checkpoint.resume=True to continue from it"
        )
    else:
        way = "no earlier checkpoint was written: free space, then start the run again"
    return WriteError(error.errno, f"{error.strerror}. {way}")


def save_checkpoint(ctx: RunContext, name: str, weights_only: bool = False) -> None:
    """Rank 0 writes ``save_dir/name`` atomically (the full state, or with
    ``weights_only`` that of :func:`best_state`); the other ranks wait for it.  A failed
    write (a full disk) is one :class:`WriteError` naming the file and the checkpoint to
    resume from (:func:`write_failed`)."""
    if ctx.rank == 0:
        state = best_state(ctx) if weights_only else full_state(ctx)
        path = os.path.join(ctx.save_dir, name)
        try:
            atomic_torch_save(state, path)
        except WriteError as e:
            raise write_failed(ctx, e) from None
        if name == "current.ckpt":
            _SAVED[path] = _counts(ctx)
    if ctx.world > 1:
        dist.barrier()  # no rank reads a checkpoint before rank 0 has written it


def resume(ctx: RunContext) -> None:
    """Remove temporaries of a killed writer, then resume from ``current.ckpt``
    (``best.ckpt`` with ``checkpoint.resume_best``: its weights, counts and selection;
    the optimizer, scheduler, hooks and RNGs start afresh, as best.ckpt does not hold
    them) or ``checkpoint.resume_file``."""
    ckpt = ctx.config.checkpoint
    if ctx.rank == 0 and os.path.isdir(ctx.save_dir):
        for path in remove_stale_temps(ctx.save_dir):
            ctx.writer.write(f"removed {path}, left by a run killed while writing")
    current = os.path.join(ctx.save_dir, "best.ckpt" if ckpt.resume_best else "current.ckpt")
    if ckpt.resume and os.path.exists(current):
        load_checkpoint(ctx, current)
    elif ckpt.resume_file:
        if not os.path.exists(ckpt.resume_file):
            raise FileNotFoundError(f"checkpoint.resume_file {ckpt.resume_file} does not exist")
        load_checkpoint(ctx, ckpt.resume_file, weights_only="train" not in ctx.run_type)


def _read(path: str, device) -> dict:
    """``torch.load`` of a checkpoint; a file that is none is an error naming it."""
    try:
        state = torch.load(path, map_location=device, weights_only=False)
    except Exception as e:  # not a zip, a bad pickle, a truncated file, ...
        raise ValueError(
            f"{path} is not a checkpoint that can be read ({reason(e)}); give a current.ckpt, "
            "best.ckpt or <model>_final.pth written by a run"
        ) from None
    if not isinstance(state, dict):
        raise ValueError(
            f"{path} holds a {type(state).__name__}, not a checkpoint (a mapping with the "
            "model's weights); give a current.ckpt, best.ckpt or <model>_final.pth"
        )
    return state


def _callback_states(state: dict) -> dict:
    """The callbacks' states of a checkpoint; one written before the loop had callbacks
    holds early stopping's under ``loop``."""
    if "callbacks" in state:
        return state["callbacks"]
    loop = state.get("loop") or {}
    return {"early_stopping": loop["early_stop"]} if "early_stop" in loop else {}


def load_checkpoint(ctx: RunContext, path: str, weights_only: bool = False) -> None:
    """Load a checkpoint (or a bare state dict such as ``<model>_final.pth``);
    ``weights_only`` loads the model's weights alone.  A weights-only checkpoint
    (``best.ckpt``) resumed for training restores the weights, counts and selection and
    says that the rest starts afresh."""
    state = _read(path, ctx.device)
    if "model" not in state:  # a bare state dict, e.g. <model>_final.pth
        ctx.model.load_state_dict(state)
        return
    ctx.model.load_state_dict(state["model"])
    if weights_only:
        return
    if "optimizer" not in state:  # best.ckpt: weights, counts and selection only
        _restore_counts(ctx, state)
        ctx.writer.write(
            f"Resumed the weights of {path} at epoch {ctx.epoch}, batch "
            f"{ctx.batch_in_epoch}; it holds no optimizer, scheduler, hook or RNG state, "
            "so those start afresh (resume from current.ckpt to continue exactly)"
        )
        return
    ctx.optimizer.load_state_dict(state["optimizer"])
    if ctx.lr_scheduler is not None and state["lr_scheduler"] is not None:
        ctx.lr_scheduler.load_state_dict(state["lr_scheduler"])
    load_hook_states(ctx.hooks, state["hooks"], path)
    _restore_counts(ctx, state)
    saved = _callback_states(state)
    for callback in ctx.callbacks:  # a callback not in the checkpoint starts afresh
        if callback.name in saved:
            callback.load_state_dict(saved[callback.name])
    ctx.last_eval_update = (state.get("loop") or {}).get("last_eval_update")
    restore_rng(state["rng"])
    ctx.writer.write(f"Resumed from {path} at epoch {ctx.epoch}, batch {ctx.batch_in_epoch}")


def _restore_counts(ctx: RunContext, state: dict) -> None:
    counts = state["counts"]
    ctx.epoch, ctx.batch_in_epoch = counts["epoch"], counts["batch_in_epoch"]
    ctx.iteration, ctx.num_updates = counts["iteration"], counts["num_updates"]
    # checkpoints written before mixed precision have neither
    ctx.skipped_steps = counts.get("skipped_steps", 0)
    ctx.amp.load_state_dict(state.get("grad_scaler", {}))
    ctx.best = state["best"]


@register_hook("checkpoint", callback=True)
class CheckpointCallback(TrainingHook):
    """Writes ``current.ckpt``: every ``training.checkpoint_interval`` batches within an
    epoch (0: none), after each whole epoch, and where training ends when that is not an
    epoch's end or a validation ran there after it."""

    def setup(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.saved_at = None

    def on_train_start(self, model: torch.nn.Module) -> None:
        self.saved_at = (self.ctx.iteration, self.ctx.last_eval_update)  # as resumed

    def _save(self) -> None:
        save_checkpoint(self.ctx, "current.ckpt")
        self.saved_at = (self.ctx.iteration, self.ctx.last_eval_update)

    def on_train_batch_end(self, batch: Any, batch_index: int, loss: float) -> None:
        ctx = self.ctx
        interval = ctx.config.training.checkpoint_interval
        if (
            interval
            and ctx.iteration % interval == 0
            and ctx.batch_in_epoch < ctx.num_batches
            and not ctx.training_done()
        ):
            self._save()

    def on_train_epoch_end(self, epoch: int) -> None:
        self._save()

    def on_train_end(self, model: torch.nn.Module) -> None:
        if self.saved_at != (self.ctx.iteration, self.ctx.last_eval_update):
            self._save()
