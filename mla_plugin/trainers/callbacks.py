"""The loop's own callbacks, and how ``training.callbacks`` builds them.

Each concern of the loop beyond the optimisation itself is a :class:`TrainingHook`
registered by name with ``callback=True`` (:func:`mla_plugin.core.hooks.register_hook`)
and listed, in the order its moments are called, in ``training.callbacks``
(mla_plugin/configs/trainer.yaml)::

    divergence_guard  progress  (here)
    model_selection             (mla_plugin/trainers/evaluation.py)
    early_stopping              (mla_plugin/trainers/loop_options.py)
    tensorboard                 (mla_plugin/trainers/tensorboard.py)
    checkpoint                  (mla_plugin/trainers/checkpointing.py)

A run may drop one (``training.callbacks="['checkpoint', 'model_selection']"``) or
list its own (registered the same way).  Every callback gets the run's
:class:`~mla_plugin.trainers.context.RunContext` at ``setup``; its ``state_dict`` is
saved in ``current.ckpt`` under its name (docs/trainer.md).  Importing this module
registers them all.
"""

import math
import sys
import time
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from omegaconf import OmegaConf
from tqdm import tqdm

from mla_plugin.core.hooks import TrainingHook, build_hooks, hook_names, register_hook
from mla_plugin.core.precision import BOOL_HINT
from mla_plugin.trainers import checkpointing, evaluation, loop_options, tensorboard  # noqa: F401
from mla_plugin.trainers.context import RunContext


def build_callbacks(specs) -> list[TrainingHook]:
    """The callbacks of ``training.callbacks`` (names or ``{type, params}``), in order;
    an unknown name, a repeated one or a hook that is not a callback is an error naming
    the entry."""
    if not OmegaConf.is_list(specs) and not isinstance(specs, list):
        raise ValueError(
            f"training.callbacks: {specs!r} must be a list of callback names or "
            "{type: <name>, params: {...}} mappings (MMF's command line reads Python "
            "literals: training.callbacks=\"['checkpoint', 'model_selection']\")"
        )
    if OmegaConf.is_list(specs):
        specs = OmegaConf.to_container(specs, resolve=True)
    callbacks = build_hooks(specs, "training.callbacks", callbacks=True)
    hook_names(callbacks)  # no name twice (checkpoints key their state by name)
    return callbacks


def progress_options(training, rank: int) -> tuple[bool, int]:
    """``(show the bar, log interval)`` from ``training.progress_bar`` (auto | true |
    false) and ``training.log_interval``; a bad value is an error naming its key."""
    progress = training.progress_bar
    if progress not in ("auto", True, False):
        raise ValueError(
            f"training.progress_bar: {progress!r} is not one of auto, true, false ({BOOL_HINT})"
        )
    if progress == "auto":
        progress = sys.stdout.isatty()  # off under the leaderboard (captured output)
    interval = training.log_interval
    if not isinstance(interval, int) or interval < 0:
        raise ValueError(
            f"training.log_interval: {interval!r} must be an integer >= 0 "
            "(updates between log lines; 0: none)"
        )
    return bool(progress) and rank == 0, interval


@register_hook("divergence_guard", callback=True)
class DivergenceGuard(TrainingHook):
    """A non-finite training loss stops the run (instead of training on and writing
    metrics of NaN weights), on every rank together: one process checks each batch at
    once; under torch.distributed the ranks agree through one all-reduce where each epoch
    (or the run) ends.  fp16 is exempt: its GradScaler skips such steps and lowers the
    scale (``skipped_steps`` in metrics.json).  In a leaderboard trial's run the
    ``optuna_trial`` callback (:mod:`~mla_plugin.trainers.trial_report`) sets
    ``ctx.on_diverged``: the run then stops and records the divergence instead."""

    def setup(self, ctx: RunContext) -> None:
        self.ctx = ctx

    def on_train_batch_end(self, batch: Any, batch_index: int, loss: float) -> None:
        ctx = self.ctx
        if ctx.precision == "fp16":
            return
        if ctx.world == 1:
            self._check([loss])
        elif ctx.batch_in_epoch == ctx.num_batches or ctx.training_done():
            self._check(ctx.epoch_losses)

    def _check(self, losses) -> None:
        ctx = self.ctx
        bad = not all(math.isfinite(v) for v in losses)
        if ctx.world > 1:
            flag = torch.tensor([float(bad)], device=ctx.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            bad = bool(flag.item())
        if bad and ctx.on_diverged is not None:  # a leaderboard trial: stop, recorded
            ctx.on_diverged(ctx.epoch + 1, ctx.num_updates)
            return
        if bad:
            raise FloatingPointError(
                f"{ctx.config.model} on {ctx.dataset_name}: the training loss is not finite "
                f"(epoch {ctx.epoch + 1}, by update {ctx.num_updates}); training diverged. "
                "Lower optimizer.params.lr, standardise the inputs, or check the data for "
                "inf/nan values"
            )


@register_hook("progress", callback=True)
class ProgressLog(TrainingHook):
    """The run's lines and the batch progress bar (Lightning's ``TQDMProgressBar``): the
    start line; every ``training.log_interval`` updates ``update N/T epoch E loss L
    samples/s S`` (L the mean batch loss and S the samples per second, all ranks, since
    the last line; T the run's batches times this batch's updates, as MLA takes one per
    modality); after each epoch its mean loss and learning rate; where a stop cut an
    epoch short, where.  The bar (rank 0, ``training.progress_bar``) counts batches."""

    def setup(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.show, self.interval = progress_options(ctx.config.training, ctx.rank)
        self.bar = None
        self.window = {"start": time.perf_counter(), "samples": 0, "losses": []}

    def on_train_start(self, model: torch.nn.Module) -> None:
        ctx = self.ctx
        length = (
            f"{ctx.max_epochs} epochs"
            if ctx.max_epochs < math.inf
            else f"{ctx.max_updates} updates"
        )
        ctx.writer.write(
            f"Training {ctx.config.model} on {ctx.dataset_name}: "
            f"{length} of {ctx.num_batches} batches per epoch, "
            f"{ctx.world} process(es), seed {ctx.seed}"
        )

    def on_train_epoch_start(self, epoch: int, num_batches: int) -> None:
        self.window = {"start": time.perf_counter(), "samples": 0, "losses": []}
        self.bar = tqdm(
            total=num_batches,
            initial=self.ctx.batch_in_epoch,  # a resumed epoch continues where it stopped
            desc=f"epoch {self.ctx.epoch_text(epoch)}",
            disable=not self.show,
            leave=False,
            dynamic_ncols=True,
        )

    def on_train_batch_end(self, batch: Any, batch_index: int, loss: float) -> None:
        ctx = self.ctx
        self.bar.update(1)
        self._log_line(len(batch.targets) * ctx.world, loss)
        if ctx.batch_in_epoch == ctx.num_batches:  # a whole epoch
            self.bar.close()
            losses = ctx.epoch_losses
            ctx.writer.write(
                f"epoch {ctx.epoch_text(ctx.epoch + 1)} updates {ctx.num_updates} "
                f"train loss {np.mean(losses) if losses else float('nan'):.4f} "
                f"lr {ctx.optimizer.param_groups[0]['lr']:.2e}"
            )
        elif ctx.training_done():  # max_updates or early_stop, mid-epoch
            self.bar.close()
            ctx.writer.write(
                f"stopped in epoch {ctx.epoch + 1} after batch {ctx.batch_in_epoch}/"
                f"{ctx.num_batches}, update {ctx.num_updates}"
            )

    def _log_line(self, samples: int, loss: float) -> None:
        ctx, window, k = self.ctx, self.window, self.interval
        window["samples"] += samples
        window["losses"].append(loss)
        before = ctx.updates_before_batch
        if not k or ctx.num_updates // k == before // k:
            return
        per_batch = max(ctx.num_updates - before, 1)
        total = ctx.max_updates
        if ctx.max_epochs < math.inf:
            total = ctx.max_epochs * ctx.num_batches * per_batch
        now = time.perf_counter()
        ctx.writer.write(
            f"update {ctx.num_updates}/{total} "
            f"epoch {ctx.epoch + 1} loss {np.mean(window['losses']):.4f} "
            f"samples/s {window['samples'] / max(now - window['start'], 1e-9):.1f}"
        )
        self.window = {"start": now, "samples": 0, "losses": []}
