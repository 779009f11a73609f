"""Hook points of the training loop (after PyTorch Lightning's callbacks).

The loop in :mod:`mla_plugin.trainers.multimodal` calls, for every optimizer step::

    loss.backward()
    hook.after_backward(step)      # MLA projects the head gradient; OGM-GE modulates
    optimizer.step()
    hook.after_step(step)          # QMF records per-sample losses

so MLA, OGM-GE and QMF plug in without special cases in the loop.
"""
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

import torch


@dataclass
class Step:
    """What one optimizer step of the loop knows.

    ``modality`` is the modality this step trains (MLA's unimodal steps) or ``None`` for
    a joint step.  ``features`` maps modality -> encoder output [B, s] (with graph),
    ``outputs`` holds the model's logits for the batch, ``mask`` is the per-sample
    presence [B, M] (or None when every modality is present).
    """

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    loss: torch.Tensor
    batch: Dict[str, Any]
    epoch: int
    batch_index: int
    num_batches: int
    global_step: int
    modality: Optional[str] = None
    modality_index: Optional[int] = None
    features: Dict[str, torch.Tensor] = field(default_factory=dict)
    outputs: Dict[str, Any] = field(default_factory=dict)
    mask: Optional[torch.Tensor] = None


class TrainingHook:
    """Base class: every method is a no-op; subclasses override what they need."""

    def on_train_start(self, model: torch.nn.Module) -> None:
        pass

    def on_epoch_start(self, epoch: int, num_batches: int) -> None:
        pass

    def after_backward(self, step: Step) -> None:
        """After ``loss.backward()``, before ``optimizer.step()``."""

    def after_step(self, step: Step) -> None:
        """After ``optimizer.step()``."""

    def state_dict(self) -> Dict[str, Any]:
        return {}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        pass
