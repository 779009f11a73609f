"""Hook points of the training loop (after PyTorch Lightning's callbacks).

The loop in :mod:`mla_plugin.trainers.multimodal` calls, for every optimizer step::

    loss.backward()                # scaled, averaged over ranks, unscaled (fp16)
    hook.after_backward(step)      # MLA projects the head gradient; OGM-GE modulates
    optimizer.step()
    hook.after_step(step)          # QMF records per-sample losses

so MLA, OGM-GE and QMF plug in without special cases in the loop.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class Step:
    """One optimizer step.

    A model's ``training_steps`` yields it with the model-side fields: ``loss``, the
    ``modality`` it trains and its ``modality_index`` (both ``None`` for a joint step),
    ``features`` (modality -> encoder output [B, s], with graph) and ``outputs`` (the
    model's logits for the batch).  The loop then fills in its context
    (``dataclasses.replace``): ``model``, ``optimizer``, ``batch``, ``epoch`` (1-based),
    ``batch_index`` (in the epoch), ``num_batches`` (per epoch), ``global_step`` (optimizer
    steps so far) and ``mask``, the per-sample presence [B, M] (None when every modality
    is present).
    """

    loss: torch.Tensor
    modality: str | None = None
    modality_index: int | None = None
    features: dict[str, torch.Tensor] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    # the loop's context
    model: torch.nn.Module | None = None
    optimizer: torch.optim.Optimizer | None = None
    batch: dict[str, Any] | None = None
    epoch: int = 0
    batch_index: int = 0
    num_batches: int = 0
    global_step: int = 0
    mask: torch.Tensor | None = None
    # fp16 only: the step's (unscaled) gradients hold inf/nan, so the GradScaler skips the
    # optimizer step (the hooks are still called; HGM leaves P alone on such a step)
    skipped: bool = False


class TrainingHook:
    """Base class: every method is a no-op; subclasses override what they need.

    ``name`` keys the hook's state in checkpoints; a model's hooks have distinct names.
    """

    name: str | None = None

    def on_train_start(self, model: torch.nn.Module) -> None:
        pass

    def on_epoch_start(self, epoch: int, num_batches: int) -> None:
        pass

    def after_backward(self, step: Step) -> None:
        """After ``loss.backward()``, before ``optimizer.step()``."""

    def after_step(self, step: Step) -> None:
        """After ``optimizer.step()``."""

    def summary(self) -> dict[str, Any]:
        """JSON-able statistics of the run so far (e.g. MLA's trace(P)/s per epoch); the
        trainer writes a non-empty one into ``metrics.json`` under the hook's ``name`` and
        logs its lists' latest values to TensorBoard.  Must be equal on every rank."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


def hook_names(hooks: Sequence[TrainingHook]) -> list[str]:
    """The hooks' names, in order; a hook without a name or a repeated name is an error."""
    names = [h.name for h in hooks]
    unnamed = [type(h).__name__ for h in hooks if not h.name]
    if unnamed:
        raise ValueError(f"training hooks without a name: {unnamed}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(
            f"training hooks share the names {repeated} (all: {names}); "
            "each hook's name must be unique"
        )
    return names
