"""The ``optuna_trial`` callback: a leaderboard trial's run reports to its Optuna study, as
Optuna's Lightning callback does, through the study's RDB storage.

It is added to a run's callbacks only when the environment names a trial
(:data:`mla_plugin.utils.trial.TRIAL_ENV`, set by ``mla-leaderboard --tune``), after
``training.callbacks``; a plain run never has it, so its config, checkpoints and
``metrics.json`` are unchanged.  In a trial's run:

- after each validation at an epoch's end it reports the fused val accuracy (step: the
  epoch) and, with a pruner (``--prune median|asha``), asks the study whether to stop: a
  pruned run stops there (its ``metrics.json`` is written as usual) and records
  ``{"outcome": "pruned", "epoch", "value"}`` in ``trial.json``;
- a non-finite training loss (:class:`~mla_plugin.trainers.callbacks.DivergenceGuard`)
  stops the run instead of raising, and ``trial.json`` records
  ``{"outcome": "diverged", "epoch", "update", "value"}``, the value being the best val
  accuracy reached before diverging, or the val split's majority rate when no validation
  came first.
"""

from __future__ import annotations

import math
import os
from typing import Any

from mla_plugin.core.hooks import TrainingHook, register_hook
from mla_plugin.trainers.evaluation import majority, predict_split
from mla_plugin.utils.io import atomic_write_json
from mla_plugin.utils.trial import TRIAL_FILE, trial_spec


def make_pruner(spec: dict):
    """The Optuna pruner of ``spec["pruner"]``: none | median | asha (with the spec's
    ``pruner_startup``, ``pruner_warmup`` epochs)."""
    import optuna

    name = spec["pruner"]
    startup, warmup = int(spec.get("pruner_startup", 2)), int(spec.get("pruner_warmup", 3))
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=startup, n_warmup_steps=warmup)
    if name == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=max(1, warmup))
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(f"pruner {name!r} is not one of none, median, asha")


def trial_callbacks() -> list[TrainingHook]:
    """``[TrialReport]`` when the environment names a trial, else ``[]``."""
    spec = trial_spec()
    return [TrialReport(spec)] if spec else []


@register_hook("optuna_trial", callback=True)
class TrialReport(TrainingHook):
    """Reports a trial run's validations to its study; prunes; records a divergence (see
    the module docstring)."""

    def __init__(self, spec: dict | None = None):
        self.spec = spec or trial_spec() or {}
        self.best = -math.inf  # the best val accuracy so far (before any divergence)
        self.diverged = False
        self._trial = None

    def setup(self, ctx) -> None:
        self.ctx = ctx
        ctx.on_diverged = self.on_diverged

    def _optuna_trial(self):
        if self._trial is None:
            import optuna

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            study = optuna.load_study(
                study_name=self.spec["study"],
                storage=self.spec["storage"],
                pruner=make_pruner(self.spec),
            )
            number = int(self.spec["trial"])
            trial_id = study._storage.get_trial_id_from_study_id_trial_number(
                study._study_id, number
            )
            self._trial = optuna.trial.Trial(study, trial_id)
        return self._trial

    def on_validation_end(self, metrics: dict[str, Any]) -> None:
        ctx = self.ctx
        if self.diverged or ctx.batch_in_epoch != 0 or ctx.rank != 0:
            return  # only whole epochs, before any divergence, once
        value = float(metrics["multi"])
        self.best = max(self.best, value)
        if self.spec.get("pruner", "none") == "none" or not self.spec.get("report", True):
            return
        trial, step = self._optuna_trial(), int(ctx.epoch)
        if step not in trial.storage.get_trial(trial._trial_id).intermediate_values:
            trial.report(value, step)  # a resumed run does not report an epoch twice
        if trial.should_prune():
            ctx.should_stop = True
            self._record({"outcome": "pruned", "epoch": step, "value": value})
            ctx.writer.write(f"trial {self.spec['trial']} pruned after epoch {step}")

    def on_diverged(self, epoch: int, update: int) -> None:
        """Called by the divergence guard instead of raising: stop, and record it."""
        ctx = self.ctx
        self.diverged = ctx.should_stop = True
        ctx.last_eval_update = ctx.num_updates  # no validation of the diverged weights
        value, source = self.best, "best val before diverging"
        if value == -math.inf:  # diverged before its first validation: the majority rate
            val = predict_split(ctx, "val")
            value = majority(val["targets"], val["mask"], ctx.modalities)["rate"]["multi"]
            source = "val majority rate"
        self._record(
            {"outcome": "diverged", "epoch": epoch, "update": update, "value": value,
             "value_from": source}
        )  # fmt: skip
        ctx.writer.write(
            f"trial {self.spec.get('trial')}: the training loss is not finite in epoch {epoch} "
            f"(update {update}); the run stops and the trial is recorded as diverged"
        )

    def _record(self, outcome: dict) -> None:
        if self.ctx.rank == 0:
            atomic_write_json(outcome, os.path.join(self.ctx.save_dir, TRIAL_FILE))

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "diverged": self.diverged}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.diverged = float(state["best"]), bool(state["diverged"])
