"""Evaluation for the multimodal trainer: predictions over a split, fused and
per-modality accuracy (MMF's ``accuracy`` metric), the ``model_selection`` callback
(Lightning's ``ModelCheckpoint`` with a monitored metric: writes ``best.ckpt``), inference
runs and per-sample predictions as CSV.  Every function takes the run's
:class:`~mla_plugin.trainers.context.RunContext`."""

import os
from typing import Any

import pandas as pd
import torch
from mmf.modules.metrics import ROC_AUC, Accuracy

from mla_plugin.core.distributed import gather_objects, reassemble, shard_range
from mla_plugin.core.hooks import TrainingHook, register_hook
from mla_plugin.trainers.checkpointing import load_checkpoint, save_checkpoint
from mla_plugin.trainers.context import RunContext
from mla_plugin.trainers.sampler import ShardSampler

SELECTIONS = ("val", "last", "test_max", "best_on_test")
# the selections that read the test split (best_on_test: test_max's old name, kept)
TEST_SELECTIONS = ("test_max", "best_on_test")


def format_metrics(metrics) -> str:
    """``multi 0.8610 strong 0.8390 weak n/a`` (None = no prediction for the modality)."""
    return " ".join(f"{k} {'n/a' if v is None else format(v, '.4f')}" for k, v in metrics.items())


def accuracy(scores: torch.Tensor, targets: torch.Tensor) -> float | None:
    """MMF's ``accuracy`` metric, as a float (None for no samples)."""
    if len(targets) == 0:
        return None
    return Accuracy().calculate({"targets": targets}, {"scores": scores}).item()


def roc_auc(scores: torch.Tensor, targets: torch.Tensor) -> float | None:
    """MMF's ``roc_auc`` metric (softmax scores against one-hot targets), as a float;
    None where it is undefined (no samples, or one class only)."""
    labels = targets.argmax(1) if targets.dim() > 1 else targets
    if len(labels) == 0 or len(torch.unique(labels)) < 2:
        return None
    return ROC_AUC().calculate({"targets": targets}, {"scores": scores.float()}).item()


def majority(targets: torch.Tensor, mask: torch.Tensor, modalities) -> dict:
    """The majority-class baseline of a split: ``class`` (the most frequent target; the
    smallest on a tie), ``samples``, and ``rate``, the share of the samples each accuracy
    counts that have that class: ``multi`` (every sample) and per modality (the samples
    where it is present, as :func:`evaluate_split` counts them; None when
    none has it).  What always predicting the split's most frequent class would score."""
    labels = targets.argmax(1) if targets.dim() > 1 else targets
    labels = labels.long()
    if len(labels) == 0:
        return {"class": None, "samples": 0, "rate": {"multi": None}}
    top = int(torch.bincount(labels).argmax())
    hit = labels == top
    rate = {"multi": float(hit.double().mean())}
    for i, m in enumerate(modalities):
        present = mask[:, i]
        rate[m] = float(hit[present].double().mean()) if bool(present.any()) else None
    return {"class": top, "samples": len(labels), "rate": rate}


@torch.no_grad()
def predict_split(ctx: RunContext, split: str) -> dict[str, torch.Tensor]:
    """Fused and per-modality logits, targets and presence over a whole split, in index
    order, on every rank.  Under torch.distributed each rank scores its contiguous share
    (:func:`~mla_plugin.core.distributed.shard_range`: no padding, none dropped), the
    shares are all-gathered and reassembled, and every index must come back exactly once
    (:func:`~mla_plugin.core.distributed.reassemble`).  Every rank calls this (it is
    collective)."""
    data = ctx.datasets[split]
    shard = shard_range(len(data), ctx.rank, ctx.world)
    loader = ctx.loader(data, ShardSampler(shard), batch_size=ctx.batch_size * ctx.world)
    model = ctx.model
    was_training = model.training
    model.eval()
    parts = {"scores": [], "targets": [], "mask": [], "index": []}
    per_modality = {m: [] for m in ctx.modalities}
    for batch in loader:
        batch = ctx.to_device(batch)
        with ctx.amp.autocast():  # training.precision, as in training
            out = model(batch)
        parts["scores"].append(out["scores"].float().cpu())
        parts["targets"].append(batch.targets.cpu())
        if "mask" in batch:
            parts["mask"].append(batch.mask.cpu().bool())
        else:  # a dataset without a presence mask (MMF's builders): all present
            parts["mask"].append(torch.ones(len(batch.targets), len(ctx.modalities)).bool())
        parts["index"].append(batch.index.cpu())
        for m in ctx.modalities:
            if m in out["modality_scores"]:  # a unimodal model predicts only its own
                per_modality[m].append(out["modality_scores"][m].float().cpu())
    model.train(was_training)
    mine = {k: torch.cat(v) for k, v in parts.items() if v}
    mine.update({f"scores_{m}": torch.cat(v) for m, v in per_modality.items() if v})
    return reassemble([p for p in gather_objects(mine) if p], len(data))


def split_metrics(p: dict[str, torch.Tensor], modalities) -> dict[str, float]:
    """``{"multi": fused accuracy, <modality>: unimodal accuracy, ...}`` of the
    predictions of :func:`predict_split`; a modality's accuracy counts only the samples
    where it is present, and is None (JSON null) when the model makes no prediction for
    it (``unimodal``'s other modalities) or no sample of the split has it."""
    metrics = {"multi": accuracy(p["scores"], p["targets"])}
    for i, m in enumerate(modalities):
        present = p["mask"][:, i]
        if f"scores_{m}" not in p or not bool(present.any()):
            metrics[m] = None
            continue
        metrics[m] = accuracy(p[f"scores_{m}"][present], p["targets"][present])
    return metrics


def evaluate_split(ctx: RunContext, split: str) -> dict[str, float]:
    """:func:`split_metrics` of ``split`` (collective)."""
    return split_metrics(predict_split(ctx, split), ctx.modalities)


def split_roc_auc(p: dict[str, torch.Tensor], modalities) -> dict[str, float] | None:
    """Binary tasks (Hateful Memes' own metric): MMF's ROC-AUC of the fused and of each
    modality's scores (on the samples where it is present; None where the model makes no
    prediction for it or the split has one class only); None for tasks of more than 2
    classes."""
    if p["scores"].shape[1] != 2:
        return None
    out = {"multi": roc_auc(p["scores"], p["targets"])}
    for i, m in enumerate(modalities):
        present = p["mask"][:, i]
        has = f"scores_{m}" in p and bool(present.any())
        out[m] = roc_auc(p[f"scores_{m}"][present], p["targets"][present]) if has else None
    return out


@register_hook("model_selection", callback=True)
class ModelSelection(TrainingHook):
    """After each validation: log val (and, for ``protocol.selection: test_max`` or its
    old name ``best_on_test``, test) accuracy and save ``best.ckpt`` when the selection value improves (never for
    ``last``).  Its state is the run context's ``best`` (saved as ``best`` in both
    checkpoints)."""

    def setup(self, ctx: RunContext) -> None:
        self.ctx = ctx

    def on_validation_end(self, metrics: dict[str, Any]) -> None:
        ctx = self.ctx
        message = f"epoch {ctx.epoch} val " + format_metrics(metrics)
        value = metrics["multi"]
        if ctx.selection in TEST_SELECTIONS:
            test = evaluate_split(ctx, "test")
            value = test["multi"]
            message += " | test (test_max: not a fair selection) " + format_metrics(test)
        ctx.writer.write(message)
        if ctx.selection != "last" and value > ctx.best["value"]:
            ctx.best = {"value": value, "update": ctx.num_updates, "epoch": ctx.epoch}
            save_checkpoint(ctx, "best.ckpt", weights_only=True)


def restore_selected(ctx: RunContext) -> dict:
    """Load the selected weights (``best.ckpt``, unless ``last`` or nothing was
    selected); returns the selected ``update`` and ``epoch``."""
    if ctx.selection == "last" or ctx.best["update"] is None:
        return {"update": ctx.num_updates, "epoch": ctx.epoch}
    load_checkpoint(ctx, os.path.join(ctx.save_dir, "best.ckpt"), weights_only=True)
    return ctx.best


def inference(ctx: RunContext) -> None:
    """``run_type`` test/val without training; with ``evaluation.predict`` (as
    ``mmf_predict`` sets) also writes per-sample predictions as CSV."""
    for split in ("val", "test"):
        if split not in ctx.run_type and not (split == "test" and "inference" in ctx.run_type):
            continue
        p = predict_split(ctx, split)  # collective: on every rank
        ctx.writer.write(f"{split} " + format_metrics(split_metrics(p, ctx.modalities)))
        if ctx.config.evaluation.predict and ctx.rank == 0:
            write_predictions(ctx, split, p)


def write_predictions(ctx: RunContext, split: str, p: dict) -> None:
    """``predictions_<dataset>_<split>.csv`` from :func:`predict_split`'s ``p``: index,
    target, fused and per-modality predictions, per-modality presence."""
    table = pd.DataFrame(
        {
            "index": p["index"].numpy(),
            "target": p["targets"].numpy(),
            "prediction": p["scores"].argmax(1).numpy(),
        }
    )
    for i, m in enumerate(ctx.modalities):
        if f"scores_{m}" in p:
            table[f"prediction_{m}"] = p[f"scores_{m}"].argmax(1).numpy()
        table[f"present_{m}"] = p["mask"][:, i].numpy()
    path = os.path.join(ctx.save_dir, f"predictions_{ctx.dataset_name}_{split}.csv")
    os.makedirs(ctx.save_dir, exist_ok=True)
    table.to_csv(path, index=False)
    ctx.writer.write(f"Wrote {len(table)} predictions to {path}")
