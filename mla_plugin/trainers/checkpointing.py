"""Checkpointing for the multimodal trainer: the resumable state, atomic saves, resume
and loading.

``current.ckpt`` holds everything needed to continue exactly: model, optimizer,
scheduler, hook state keyed by hook name (MLA's P, QMF's history, OGM-GE's noise
generators), the position in the epoch, the best selection so far, the RNG states and the
resolved config.  ``best.ckpt`` holds only what using the selected model needs
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

from mla_plugin.core.hooks import TrainingHook, hook_names
from mla_plugin.utils.io import atomic_torch_save, remove_stale_temps

BEST_KEYS = ("model", "counts", "best", "config")
"""What ``best.ckpt`` holds (weights only plus what selection and prediction need)."""


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


class CheckpointingMixin:
    """State, save, resume and load for :class:`~mla_plugin.trainers.multimodal.MultimodalTrainer`."""

    def _state(self):
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "lr_scheduler": self.lr_scheduler.state_dict() if self.lr_scheduler else None,
            "hooks": hook_states(self.hooks),
            "counts": {
                "epoch": self.epoch,
                "batch_in_epoch": self.batch_in_epoch,
                "iteration": self.iteration,
                "num_updates": self.num_updates,
                "skipped_steps": self.skipped_steps,
            },
            "grad_scaler": self.amp.state_dict(),  # fp16's loss scale; {} otherwise
            "best": dict(self.best),
            "loop": self.loop_state(),  # early stopping, last evaluation (loop_options)
            "rng": capture_rng(),
            "config": self._resolved_config(),
        }

    def _best_state(self):
        """The weights-only state of ``best.ckpt`` (:data:`BEST_KEYS`)."""
        full = {
            "model": self.model.state_dict(),
            "counts": {
                "epoch": self.epoch,
                "batch_in_epoch": self.batch_in_epoch,
                "iteration": self.iteration,
                "num_updates": self.num_updates,
            },
            "best": dict(self.best),
            "config": self._resolved_config(),
        }
        return {k: full[k] for k in BEST_KEYS}

    def _resolved_config(self):
        """The run's config as plain data, resolved once (it does not change while
        training; resolving it at every checkpoint cost about 2 % of a small run)."""
        if getattr(self, "_config_container", None) is None:
            self._config_container = OmegaConf.to_container(self.config, resolve=True)
        return self._config_container

    def _save(self, name, weights_only=False):
        """Rank 0 writes ``save_dir/name`` atomically (the full state, or with
        ``weights_only`` that of :meth:`_best_state`); the other ranks wait for it."""
        if self.rank == 0:
            state = self._best_state() if weights_only else self._state()
            atomic_torch_save(state, os.path.join(self.save_dir, name))
        if self.world > 1:
            dist.barrier()  # no rank reads a checkpoint before rank 0 has written it

    def _resume(self):
        """Remove temporaries of a killed writer, then resume from ``current.ckpt``
        (``best.ckpt`` with ``checkpoint.resume_best``: its weights, counts and selection;
        the optimizer, scheduler, hooks and RNGs start afresh, as best.ckpt does not hold
        them) or ``checkpoint.resume_file``."""
        ckpt = self.config.checkpoint
        if self.rank == 0 and os.path.isdir(self.save_dir):
            for path in remove_stale_temps(self.save_dir):
                self.writer.write(f"removed {path}, left by a run killed while writing")
        current = os.path.join(self.save_dir, "best.ckpt" if ckpt.resume_best else "current.ckpt")
        if ckpt.resume and os.path.exists(current):
            self._load_checkpoint(current)
        elif ckpt.resume_file:
            if not os.path.exists(ckpt.resume_file):
                raise FileNotFoundError(f"checkpoint.resume_file {ckpt.resume_file} does not exist")
            self._load_checkpoint(ckpt.resume_file, weights_only="train" not in self.run_type)

    def _load_checkpoint(self, path, weights_only=False):
        """Load a checkpoint (or a bare state dict such as ``<model>_final.pth``);
        ``weights_only`` loads the model's weights alone.  A weights-only checkpoint
        (``best.ckpt``) resumed for training restores the weights, counts and selection and
        says that the rest starts afresh."""
        state = torch.load(path, map_location=self.device, weights_only=False)
        if "model" not in state:  # a bare state dict, e.g. <model>_final.pth
            self.model.load_state_dict(state)
            return
        self.model.load_state_dict(state["model"])
        if weights_only:
            return
        if "optimizer" not in state:  # best.ckpt: weights, counts and selection only
            self._restore_counts(state)
            self.writer.write(
                f"Resumed the weights of {path} at epoch {self.epoch}, batch "
                f"{self.batch_in_epoch}; it holds no optimizer, scheduler, hook or RNG state, "
                "so those start afresh (resume from current.ckpt to continue exactly)"
            )
            return
        self.optimizer.load_state_dict(state["optimizer"])
        if self.lr_scheduler is not None and state["lr_scheduler"] is not None:
            self.lr_scheduler.load_state_dict(state["lr_scheduler"])
        load_hook_states(self.hooks, state["hooks"], path)
        self._restore_counts(state)
        self.load_loop_state(state.get("loop"))
        restore_rng(state["rng"])
        self.writer.write(f"Resumed from {path} at epoch {self.epoch}, batch {self.batch_in_epoch}")

    def _restore_counts(self, state):
        counts = state["counts"]
        self.epoch, self.batch_in_epoch = counts["epoch"], counts["batch_in_epoch"]
        self.iteration, self.num_updates = counts["iteration"], counts["num_updates"]
        # checkpoints written before mixed precision have neither
        self.skipped_steps = counts.get("skipped_steps", 0)
        self.amp.load_state_dict(state.get("grad_scaler", {}))
        self.best = state["best"]
