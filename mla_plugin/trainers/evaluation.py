"""Evaluation for the multimodal trainer: predictions over a split, fused and
per-modality accuracy (MMF's ``accuracy`` metric), model selection, inference runs and
per-sample predictions as CSV."""

import os

import pandas as pd
import torch
from mmf.modules.metrics import ROC_AUC, Accuracy

from mla_plugin.core.distributed import gather_objects, reassemble, shard_range
from mla_plugin.trainers.sampler import ShardSampler

SELECTIONS = ("val", "last", "best_on_test")


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
    where it is present, as :meth:`EvaluationMixin.evaluate_split` counts them; None when
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


class EvaluationMixin:
    """Evaluation and selection for :class:`~mla_plugin.trainers.multimodal.MultimodalTrainer`."""

    @torch.no_grad()
    def _predict_split(self, split: str) -> dict[str, torch.Tensor]:
        """Fused and per-modality logits, targets and presence over a whole split, in
        index order, on every rank.  Under torch.distributed each rank scores its
        contiguous share (:func:`~mla_plugin.core.distributed.shard_range`: no padding,
        none dropped), the shares are all-gathered and reassembled, and every index must
        come back exactly once (:func:`~mla_plugin.core.distributed.reassemble`).  Every
        rank calls this (it is collective)."""
        data = self.datasets[split]
        shard = shard_range(len(data), self.rank, self.world)
        loader = self._loader(data, ShardSampler(shard), batch_size=self.batch_size * self.world)
        was_training = self.model.training
        self.model.eval()
        parts = {"scores": [], "targets": [], "mask": [], "index": []}
        per_modality = {m: [] for m in self.modalities}
        for batch in loader:
            batch = self._to_device(batch)
            with self.amp.autocast():  # training.precision, as in training
                out = self.model(batch)
            parts["scores"].append(out["scores"].float().cpu())
            parts["targets"].append(batch.targets.cpu())
            if "mask" in batch:
                parts["mask"].append(batch.mask.cpu().bool())
            else:  # a dataset without a presence mask (MMF's builders): all present
                parts["mask"].append(torch.ones(len(batch.targets), len(self.modalities)).bool())
            parts["index"].append(batch.index.cpu())
            for m in self.modalities:
                if m in out["modality_scores"]:  # a unimodal model predicts only its own
                    per_modality[m].append(out["modality_scores"][m].float().cpu())
        self.model.train(was_training)
        mine = {k: torch.cat(v) for k, v in parts.items() if v}
        mine.update({f"scores_{m}": torch.cat(v) for m, v in per_modality.items() if v})
        return reassemble([p for p in gather_objects(mine) if p], len(data))

    def evaluate_split(self, split: str) -> dict[str, float]:
        """``{"multi": fused accuracy, <modality>: unimodal accuracy, ...}``; a modality's
        accuracy counts only the samples where it is present, and is None (JSON null) when
        the model makes no prediction for it (``unimodal``'s other modalities) or no
        sample of the split has it."""
        return self._split_metrics(self._predict_split(split))

    def _split_metrics(self, p: dict[str, torch.Tensor]) -> dict[str, float]:
        """:meth:`evaluate_split` on the predictions of :meth:`_predict_split`."""
        metrics = {"multi": accuracy(p["scores"], p["targets"])}
        for i, m in enumerate(self.modalities):
            present = p["mask"][:, i]
            if f"scores_{m}" not in p or not bool(present.any()):
                metrics[m] = None
                continue
            metrics[m] = accuracy(p[f"scores_{m}"][present], p["targets"][present])
        return metrics

    def _split_roc_auc(self, p: dict[str, torch.Tensor]) -> dict[str, float] | None:
        """Binary tasks (Hateful Memes' own metric): MMF's ROC-AUC of the fused and of
        each modality's scores (on the samples where it is present; None where the model
        makes no prediction for it or the split has one class only); None for tasks of
        more than 2 classes."""
        if p["scores"].shape[1] != 2:
            return None
        out = {"multi": roc_auc(p["scores"], p["targets"])}
        for i, m in enumerate(self.modalities):
            present = p["mask"][:, i]
            has = f"scores_{m}" in p and bool(present.any())
            out[m] = roc_auc(p[f"scores_{m}"][present], p["targets"][present]) if has else None
        return out

    def _evaluate_and_select(self):
        """After an epoch: log val (and, for ``best_on_test``, test) accuracy and save
        ``best.ckpt`` when the selection value improves (never for ``last``)."""
        val = self.evaluate_split("val")
        self.last_val = val  # for TensorBoard
        message = f"epoch {self.epoch} val " + format_metrics(val)
        value = val["multi"]
        if self.selection == "best_on_test":
            test = self.evaluate_split("test")
            value = test["multi"]
            message += " | test (legacy selection) " + format_metrics(test)
        self.writer.write(message)
        if self.selection != "last" and value > self.best["value"]:
            self.best = {"value": value, "update": self.num_updates, "epoch": self.epoch}
            self._save("best.ckpt", weights_only=True)

    def _restore_selected(self) -> dict:
        """Load the selected weights (``best.ckpt``, unless ``last`` or nothing was
        selected); returns the selected ``update`` and ``epoch``."""
        if self.selection == "last" or self.best["update"] is None:
            return {"update": self.num_updates, "epoch": self.epoch}
        self._load_checkpoint(os.path.join(self.save_dir, "best.ckpt"), weights_only=True)
        return self.best

    def inference(self):
        """``run_type`` test/val without training; with ``evaluation.predict`` (as
        ``mmf_predict`` sets) also writes per-sample predictions as CSV."""
        for split in ("val", "test"):
            if split not in self.run_type and not (
                split == "test" and "inference" in self.run_type
            ):
                continue
            p = self._predict_split(split)  # collective: on every rank
            self.writer.write(f"{split} " + format_metrics(self._split_metrics(p)))
            if self.config.evaluation.predict and self.rank == 0:
                self._write_predictions(split, p)

    def _write_predictions(self, split, p):
        """``predictions_<dataset>_<split>.csv`` from :meth:`_predict_split`'s ``p``:
        index, target, fused and per-modality predictions, per-modality presence."""
        table = pd.DataFrame(
            {
                "index": p["index"].numpy(),
                "target": p["targets"].numpy(),
                "prediction": p["scores"].argmax(1).numpy(),
            }
        )
        for i, m in enumerate(self.modalities):
            if f"scores_{m}" in p:
                table[f"prediction_{m}"] = p[f"scores_{m}"].argmax(1).numpy()
            table[f"present_{m}"] = p["mask"][:, i].numpy()
        path = os.path.join(self.save_dir, f"predictions_{self.dataset_name}_{split}.csv")
        os.makedirs(self.save_dir, exist_ok=True)
        table.to_csv(path, index=False)
        self.writer.write(f"Wrote {len(table)} predictions to {path}")
