"""The end of a training run: the ranks' agreement, the selected weights restored, val and
test evaluated, ``<model>_final.pth``, ``test_predictions.npz`` and ``metrics.json``
written."""

import os

import numpy as np
import torch

from mla_plugin.core.distributed import same_on_all_ranks
from mla_plugin.trainers.checkpointing import atomic_torch_save, write_failed
from mla_plugin.trainers.context import RunContext
from mla_plugin.trainers.evaluation import (
    format_metrics,
    majority,
    predict_split,
    restore_selected,
    split_metrics,
    split_roc_auc,
)
from mla_plugin.trainers.records import record_fields
from mla_plugin.utils.io import PREDICTIONS_FILE, WriteError, atomic_write, atomic_write_json


def _flatten_state(state):
    if isinstance(state, dict):
        for v in state.values():
            yield from _flatten_state(v)
    elif isinstance(state, (list, tuple)):
        for v in state:
            yield from _flatten_state(v)
    else:
        yield state


def ranks_in_sync(ctx: RunContext) -> bool:
    """Under torch.distributed, whether every rank holds bit-identical parameters and
    hook state (MLA's P)."""
    if ctx.world == 1:
        return True
    tensors = list(ctx.model.state_dict().values())
    for hook in ctx.hooks:
        tensors += [v for v in _flatten_state(hook.state_dict()) if torch.is_tensor(v)]
    in_sync = same_on_all_ranks(tensors, ctx.device)
    if not in_sync:
        ctx.writer.write("ranks hold different parameters at the end of training", "error")
    return in_sync


def prediction_arrays(p: dict[str, torch.Tensor], modalities) -> dict[str, np.ndarray]:
    """:func:`predict_split`'s ``p`` as the arrays of :data:`PREDICTIONS_FILE`: ``index``,
    ``label``, the fused ``prediction`` (argmax) and ``scores``, and per modality
    ``present_<m>`` and, where the model predicts it, ``prediction_<m>`` and ``scores_<m>``
    (every sample: those where ``m`` is absent too, as the model scored them)."""
    labels = p["targets"].argmax(1) if p["targets"].dim() > 1 else p["targets"]
    arrays = {
        "modalities": np.array(list(modalities), dtype=str),
        "index": p["index"].long().numpy(),
        "label": labels.long().numpy(),
        "prediction": p["scores"].argmax(1).long().numpy(),
        "scores": p["scores"].float().numpy(),
    }
    for i, m in enumerate(modalities):
        arrays[f"present_{m}"] = p["mask"][:, i].bool().numpy()
        if f"scores_{m}" in p:
            arrays[f"prediction_{m}"] = p[f"scores_{m}"].argmax(1).long().numpy()
            arrays[f"scores_{m}"] = p[f"scores_{m}"].float().numpy()
    return arrays


def write_test_predictions(ctx: RunContext, p: dict[str, torch.Tensor]) -> None:
    """:data:`PREDICTIONS_FILE` (compressed npz, written whole or not at all)."""
    arrays = prediction_arrays(p, ctx.modalities)
    atomic_write(
        os.path.join(ctx.save_dir, PREDICTIONS_FILE),
        lambda f: np.savez_compressed(f, **arrays),
    )


def finalize(ctx: RunContext, variant: dict) -> None:
    """Check the ranks agree, restore the selected weights, evaluate val and test, write
    ``<model>_final.pth``, the per-sample test predictions (:data:`PREDICTIONS_FILE`) and,
    last, ``metrics.json`` (with each split's majority-class baseline,
    :func:`~mla_plugin.trainers.evaluation.majority`)."""
    model_name = ctx.config.model
    in_sync = ranks_in_sync(ctx)  # the weights training ended with, before best.ckpt
    selected = restore_selected(ctx)
    predictions = {split: predict_split(ctx, split) for split in ("val", "test")}
    results = {split: split_metrics(p, ctx.modalities) for split, p in predictions.items()}
    chance = {
        split: majority(p["targets"], p["mask"], ctx.modalities) for split, p in predictions.items()
    }
    if ctx.rank != 0:
        ctx.writer.write("test " + format_metrics(results["test"]))
        return
    metrics = {
        "method": model_name,
        **record_fields(ctx.config, variant),  # "variant": {"hgm": "off"}, "label"
        "dataset": ctx.dataset_name,
        "seed": ctx.seed,
        "selection": ctx.selection,
        "selected_update": selected["update"],
        "selected_epoch": selected["epoch"],
        "modalities": ctx.modalities,
        "world_size": ctx.world,
        "ranks_in_sync": in_sync,
        "precision": ctx.precision,
        # fp16 steps the GradScaler skipped (inf/nan gradients); 0 otherwise
        "skipped_steps": ctx.skipped_steps,
        "val": results["val"],
        "test": results["test"],
        # binary tasks: MMF's roc_auc per split (fused, per modality); else null
        "roc_auc": {s: split_roc_auc(p, ctx.modalities) for s, p in predictions.items()}
        if predictions["test"]["scores"].shape[1] == 2
        else None,
        # the majority-class baseline of each split, from its targets
        "majority": chance,
        **ctx.hook_summaries(),  # e.g. "hgm": {"trace_p": [...]}
        **ctx.data_report,  # {"dropped_samples": ...} when any were dropped
    }
    try:
        atomic_torch_save(
            ctx.model.state_dict(), os.path.join(ctx.save_dir, f"{model_name}_final.pth")
        )
        write_test_predictions(ctx, predictions["test"])  # before metrics.json: a finished
        # run (metrics.json present) always has its predictions
        atomic_write_json(metrics, os.path.join(ctx.save_dir, "metrics.json"))
    except WriteError as e:  # a full disk: name the file and the checkpoint to resume from
        raise write_failed(ctx, e) from None
    ctx.writer.write("test " + format_metrics(results["test"]))
