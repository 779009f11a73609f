"""The run context: what the multimodal trainer's loop hands to its callbacks and hooks.

One typed record of a run instead of attributes shared between mixins: the built parts
(model, optimizer, scheduler, data), the run's place in training (the counters, the
stage), where it writes, how it runs (rank, world, precision) and what the callbacks
share (the selection so far, the last validation, whether to stop).  The loop owns the
counters; each callback owns the fields its docstring names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from mla_plugin.core.hooks import TrainingHook
from mla_plugin.trainers.sampler import ExampleView


@dataclass
class RunContext:
    """The state of one training run (see the module docstring)."""

    # how the run is set up
    config: Any
    writer: Any  # MMF's Logger: .write(message, level="info")
    device: torch.device
    rank: int = 0
    world: int = 1
    seed: int = 0
    run_type: str = "train"
    save_dir: str = ""
    dataset_name: str = ""
    precision: str = "fp32"
    amp: Any = None  # core.precision.MixedPrecision
    # the built parts
    model: torch.nn.Module | None = None
    optimizer: torch.optim.Optimizer | None = None
    lr_scheduler: Any = None
    ddp: Any = None  # DistributedDataParallel when training.grad_sync is ddp
    modalities: list[str] = field(default_factory=list)
    datasets: dict[str, Any] = field(default_factory=dict)
    train_loader: Any = None
    train_sampler: Any = None
    batch_size: int = 0  # per rank
    num_batches: int = 0  # per epoch
    pin_memory: bool = False
    data_report: dict[str, Any] = field(default_factory=dict)  # {"dropped_samples": ...}
    hooks: list[TrainingHook] = field(default_factory=list)  # the model's, then the user's
    callbacks: list[TrainingHook] = field(default_factory=list)  # training.callbacks
    # how long to train (mla_plugin.trainers.loop_options); math.inf: not in force
    max_epochs: float = math.inf
    max_updates: float = math.inf
    evaluation_interval: int | None = None
    # the counters (saved in current.ckpt: ``counts``)
    epoch: int = 0  # whole epochs done
    batch_in_epoch: int = 0  # batches done in the current epoch
    iteration: int = 0  # batches done
    num_updates: int = 0  # optimizer steps done
    skipped_steps: int = 0  # fp16 steps the GradScaler skipped (inf/nan gradients)
    stage: str | None = None  # the current stage's name (mla_plugin.trainers.stages)
    # this batch and epoch (not saved)
    updates_before_batch: int = 0
    epoch_losses: list[float] = field(default_factory=list)  # this epoch's batch losses
    last_train_loss: float = math.nan  # the mean of the last whole epoch's
    # shared by the callbacks
    selection: str = "val"  # protocol.selection
    best: dict[str, Any] = field(
        default_factory=lambda: {"value": -math.inf, "update": None, "epoch": None}
    )  # model_selection's (saved as ``best``)
    last_val: dict[str, Any] = field(default_factory=dict)  # the last validation's
    last_eval_update: int | None = None  # the update of the last validation
    should_stop: bool = False  # set by early_stopping
    # set by a trial's optuna_trial callback: a divergence stops the run, recorded
    on_diverged: Any = None
    resolved_config: dict | None = None  # the config as plain data, for checkpoints

    def all_hooks(self) -> list[TrainingHook]:
        """The model's hooks, the user's, then the loop's callbacks: the order every
        moment is called in."""
        return [*self.hooks, *self.callbacks]

    def call(self, moment: str, *args) -> None:
        """Call ``moment`` on every hook and callback, in order."""
        for hook in self.all_hooks():
            getattr(hook, moment)(*args)

    def training_done(self) -> bool:
        """``max_epochs``, ``max_updates`` or a callback's stop reached."""
        return (
            self.epoch >= self.max_epochs
            or self.num_updates >= self.max_updates
            or self.should_stop
        )

    def epoch_text(self, epoch: int) -> str:
        """``3/100`` (or ``3`` when training stops by updates)."""
        return f"{epoch}/{self.max_epochs}" if self.max_epochs < math.inf else str(epoch)

    def hook_summaries(self) -> dict[str, Any]:
        """``{hook.name: hook.summary()}`` for the hooks with a non-empty summary."""
        out = {h.name: h.summary() for h in self.hooks}
        return {name: summary for name, summary in out.items() if summary}

    def loader(self, dataset, sampler, batch_size: int | None = None):
        """A DataLoader over ``dataset`` in ``sampler``'s order, collated by MMF's
        ``BatchCollator``, its generator seeded with the run's seed."""
        from mmf.common.batch_collator import BatchCollator

        return torch.utils.data.DataLoader(
            dataset,
            batch_size=batch_size or self.batch_size,
            sampler=sampler,
            num_workers=self.config.training.num_workers,
            collate_fn=BatchCollator(dataset.dataset_name, dataset.dataset_type),
            pin_memory=self.pin_memory and self.device.type == "cuda",
            generator=torch.Generator().manual_seed(self.seed),
        )

    def set_train_examples(self, indices=None, keep=None) -> None:
        """The training examples of the coming epochs (docs/trainer.md, "Per-epoch
        examples"): ``indices`` [K] (train-split samples, repeats allowed) and ``keep``
        [K, M] bool (the modalities each example keeps), or None for the whole split.
        The sampler shuffles these K examples as it does the split; the caller (a hook)
        keeps them in its state and sets them again when it is resumed."""
        data = self.datasets["train"]
        if indices is None:
            view = data
        else:
            if keep is None:
                keep = torch.ones(len(indices), len(self.modalities), dtype=torch.bool)
            view = ExampleView(data, torch.as_tensor(indices), torch.as_tensor(keep))
        self.train_sampler.resize(len(view))
        self.train_loader = self.loader(view, self.train_sampler)
        self.num_batches = len(self.train_loader)

    def to_device(self, batch):
        """A collated batch as MMF's ``SampleList`` on the run's device."""
        from mmf.common.sample import SampleList

        batch = SampleList(batch) if not isinstance(batch, SampleList) else batch
        # non-blocking copies overlap the next transfer with compute from pinned memory
        return batch.to(self.device, non_blocking=self.pin_memory)
