"""MMF's loop options as the multimodal trainer honours them (defaults:
``mla_bridge/defaults.yaml``; docs/bridge.md "MMF options").

An *update* is one ``optimizer.step()``, as in MMF: one per batch for the baselines, one
per modality per batch for MLA (``num_updates`` in the logs and metrics.json).  The loop
checks these options at the end of each batch, so a run stops at a batch boundary: for a
method taking several updates per batch, at the end of the batch in which the count
reaches the limit.

* ``max_epochs`` / ``max_updates``: MMF's rule -- when ``max_epochs`` is set it wins and
  ``max_updates`` is ignored (with a warning when that is set too); otherwise training
  stops after ``max_updates`` updates, mid-epoch if need be.
* ``evaluation_interval``: null evaluates and selects at the end of each epoch (the
  plugin's default); N evaluates every N updates instead, as MMF does; either way once
  more where training stops if the last evaluation was earlier (MMF's final validation).
* ``clip_gradients`` / ``max_grad_l2_norm`` / ``clip_norm_mode`` (``all``): the total L2
  norm of the final gradients is clipped right before ``optimizer.step()``, after the
  unscale and after the hooks that change the gradients (MLA's HGM projection, OGM-GE).
* ``early_stop`` (:class:`EarlyStopping`, the ``early_stopping`` callback of
  ``training.callbacks``): MMF's rule, evaluated at each evaluation.
"""

import math
from collections.abc import Sequence
from typing import Any

from mla_plugin.config_validation import ConfigError
from mla_plugin.core.hooks import TrainingHook, register_hook

ACCURACY_ALIASES = ("accuracy",)
"""Names MMF gives the fused accuracy (``val/<dataset>/accuracy``), read as ``multi``."""


def stop_limits(training, write) -> tuple[float, float]:
    """``(max_epochs, max_updates)``, ``math.inf`` for the one not in force (MMF's rule:
    max_epochs wins); ``write(message, level)`` reports an ignored max_updates."""
    epochs, updates = training.max_epochs, training.max_updates
    if epochs is not None:
        if updates is not None:
            write(
                f"training.max_updates={updates} is ignored: training.max_epochs={epochs} "
                "is set and wins, as in MMF; set training.max_epochs=null to stop by updates",
                "warning",
            )
        return int(epochs), math.inf
    return math.inf, int(updates)


@register_hook("early_stopping", callback=True)
class EarlyStoppingCallback(TrainingHook):
    """The ``early_stopping`` callback: :class:`EarlyStopping` after each validation; a
    stop sets the run context's ``should_stop``.  Its state (the rule's) is saved in
    ``current.ckpt`` under its name."""

    def setup(self, ctx) -> None:
        self.ctx = ctx
        self.rule = EarlyStopping(
            ctx.config.training.early_stop, ["multi", *ctx.modalities], ctx.dataset_name
        )

    def on_validation_end(self, metrics: dict[str, Any]) -> None:
        if self.rule(metrics, self.ctx.num_updates):
            self.ctx.writer.write(self.rule.message())
        self.ctx.should_stop = self.ctx.should_stop or self.rule.stopped

    def state_dict(self) -> dict[str, Any]:
        return self.rule.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rule.load_state_dict(state)
        self.ctx.should_stop = self.ctx.should_stop or self.rule.stopped


class EarlyStopping:
    """``training.early_stop``: at each evaluation the criteria's value (a validation
    accuracy the trainer computes: ``multi``, the fused one, or a modality's) is compared
    with the best so far; after ``patience`` updates without a strict improvement the run
    stops (MMF's rule: ``best_update + patience < num_updates``) and finalizes as usual
    (selection per ``protocol.selection``)."""

    def __init__(self, config, metrics: Sequence[str], dataset: str):
        self.enabled = bool(config.enabled)
        self.patience = int(config.patience)
        self.minimize = bool(config.minimize)
        self.criteria = str(config.criteria)
        self.key = None
        if self.enabled:
            self.key = self._metric(self.criteria, metrics, dataset)
            if self.minimize:
                raise ConfigError(
                    f"training.early_stop.criteria {self.criteria!r} is an accuracy (higher is "
                    "better) but training.early_stop.minimize is true: set it to false"
                )
        self.best = math.inf if self.minimize else -math.inf
        self.best_update = 0
        self.stopped = False

    @staticmethod
    def _metric(criteria: str, metrics: Sequence[str], dataset: str) -> str:
        name = criteria
        for prefix in ("val/", f"{dataset}/"):
            name = name[len(prefix) :] if name.startswith(prefix) else name
        name = "multi" if name in ACCURACY_ALIASES else name
        if name not in metrics:
            valid = [f"val/{m}" for m in metrics]
            raise ConfigError(
                f"training.early_stop.criteria {criteria!r} is not a validation metric the "
                f"plugin's trainer computes (it computes no validation loss); one of "
                f"{', '.join(valid)} (or accuracy for val/multi)"
            )
        return name

    def __call__(self, val: dict, num_updates: int) -> bool:
        """After an evaluation: True when the run should stop now."""
        if not self.enabled:
            return False
        value = val[self.key]
        if value is None:
            raise ValueError(
                f"training.early_stop.criteria {self.criteria!r}: the model made no "
                f"prediction for {self.key} on val"
            )
        if value < self.best if self.minimize else value > self.best:
            self.best, self.best_update = value, num_updates
        elif self.best_update + self.patience < num_updates:
            self.stopped = True
        return self.stopped

    def message(self) -> str:
        return (
            f"early stop: val/{self.key} has not improved for more than {self.patience} "
            f"updates (best {self.best:.4f} at update {self.best_update})"
        )

    def state_dict(self) -> dict:
        return {"best": self.best, "best_update": self.best_update, "stopped": self.stopped}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_update = state["best"], state["best_update"]
        self.stopped = state["stopped"]
