"""Stages: methods that train in phases (docs/trainer.md "Stages").

A model may declare its stages with a ``stages()`` method returning a list of
:class:`Stage`, in order: each has a ``name``, its length in ``epochs`` (the last may be
None: until training ends) and the parameters it ``freezes`` (prefixes of the model's
parameter names, e.g. ``"encoders.audio"``).  Unimodal teachers for k epochs and then
joint training, or a boosting round per modality, are such lists.  A model without
``stages()`` has one stage, ``train``, which freezes nothing (every current model).

The loop's :class:`StageRunner` (a hook, called after the model's and the user's hooks):

* at each epoch's start, finds the stage of that epoch from the whole epochs done, and
  on entering it calls the model's ``set_stage(stage)`` when it has one (the model's
  ``training_steps`` may then train what the stage trains) and logs the change;
* before each optimizer step, drops the gradients of the stage's frozen parameters
  (``grad = None``), so the optimizer leaves them exactly as they are: no step, no
  momentum, no weight decay;
* saves, under its name ``stages`` in ``current.ckpt``, the current stage and each
  entered stage's state (the epoch and update it began at), so a resume lands in the
  right stage and a checkpoint of other stages is refused.
"""

from __future__ import annotations

from typing import Any

from mla_plugin.core.hooks import Step, TrainingHook
from mla_plugin.core.stages import Stage

__all__ = ["Stage", "StageRunner", "declared_stages"]

DEFAULT_STAGES = (Stage("train"),)


def declared_stages(model) -> tuple[Stage, ...]:
    """The model's stages, checked: distinct names, positive lengths, only the last
    open-ended."""
    declare = getattr(model, "stages", None)
    if declare is None:
        return DEFAULT_STAGES
    stages = tuple(declare())
    where = f"{type(model).__name__}.stages()"
    if not stages or not all(isinstance(s, Stage) for s in stages):
        raise ValueError(f"{where} must return a non-empty list of Stage")
    names = [s.name for s in stages]
    if len(set(names)) != len(names):
        raise ValueError(f"{where}: stage names must be distinct, got {names}")
    for i, stage in enumerate(stages):
        last = i == len(stages) - 1
        if stage.epochs is None and not last:
            raise ValueError(f"{where}: only the last stage may have epochs=None ({stage.name})")
        if stage.epochs is not None and (not isinstance(stage.epochs, int) or stage.epochs < 1):
            raise ValueError(f"{where}: stage {stage.name} needs epochs >= 1, got {stage.epochs}")
    return stages


class StageRunner(TrainingHook):
    """Enters the stages of the run's model and keeps their frozen parameters still (see
    the module docstring)."""

    name = "stages"

    def __init__(self, ctx):
        self.ctx = ctx
        self.stages = declared_stages(ctx.model)
        self.current: Stage | None = None
        self.states: dict[str, dict[str, Any]] = {}
        self.frozen: list = []

    def stage_at(self, epochs_done: int) -> Stage:
        """The stage an epoch belongs to, after ``epochs_done`` whole epochs."""
        end = 0
        for stage in self.stages:
            if stage.epochs is None:
                return stage
            end += stage.epochs
            if epochs_done < end:
                return stage
        return self.stages[-1]  # past the declared lengths: the last stage goes on

    def on_train_epoch_start(self, epoch: int, num_batches: int) -> None:
        ctx = self.ctx
        stage = self.stage_at(ctx.epoch)
        if stage is self.current:
            return
        self.current = stage
        ctx.stage = stage.name
        self.states.setdefault(
            stage.name, {"start_epoch": ctx.epoch, "start_update": ctx.num_updates}
        )
        params = dict(ctx.model.named_parameters())
        self.frozen = [p for n, p in params.items() if any(n.startswith(f) for f in stage.freezes)]
        missing = [f for f in stage.freezes if not any(n.startswith(f) for n in params)]
        if missing:
            raise ValueError(f"stage {stage.name} freezes {missing}: no such parameters")
        if hasattr(ctx.model, "set_stage"):
            ctx.model.set_stage(stage)
        if len(self.stages) > 1:
            ctx.writer.write(f"stage {stage.name} from epoch {ctx.epoch + 1}")

    def on_before_optimizer_step(self, step: Step) -> None:
        for p in self.frozen:
            p.grad = None

    def state_dict(self) -> dict[str, Any]:
        return {
            "names": [s.name for s in self.stages],
            "current": self.current.name if self.current else None,
            "states": {k: dict(v) for k, v in self.states.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        names = [s.name for s in self.stages]
        if state["names"] != names:
            raise ValueError(
                f"the checkpoint was trained in the stages {state['names']}, but the model "
                f"declares {names}"
            )
        self.states = {k: dict(v) for k, v in state["states"].items()}
        expected = self.stage_at(self.ctx.epoch).name
        # (at an epoch's end the saved stage may be the one that just ended)
        if state["current"] not in (None, expected) and self.ctx.batch_in_epoch:
            raise ValueError(
                f"the checkpoint is in stage {state['current']} but its epoch "
                f"{self.ctx.epoch} belongs to stage {expected}"
            )
