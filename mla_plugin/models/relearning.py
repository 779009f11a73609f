"""Diagnosing & Re-learning (Wei et al., ECCV 2024) on top of Concat: trained on the fused
CE as Concat, and at the start of every ``relearn_period``-th epoch (not the first; at most
``relearn_count`` times) :class:`RelearnHook` measures each encoder's k-means purity on the
train split and on held-out data (val, :func:`~mla_plugin.data.heldout.heldout_loader`)
and pulls the encoder back towards its initial weights by ``α_m = tanh(λ·|ΔP_m|)``
(:mod:`mla_plugin.core.relearning`).  The heads are not touched, nor the optimizer's state
(as in the official code).

The initial weights and every re-initialisation's purities and α are the hook's state, so
a resumed run re-initialises from the same θ^(0) and never twice at one epoch.  Missing
modalities: an encoder's purity counts only the samples that have its modality.  Cost:
per re-initialisation, one no-grad pass over train and val and one k-means per modality
and split; the steps are Concat's.
"""

from __future__ import annotations

import torch
from mmf.common.registry import registry

from mla_plugin.core.hooks import TrainingHook, register_hook
from mla_plugin.core.relearning import kmeans_purity, relearning_strength, soft_reinit_
from mla_plugin.data.heldout import heldout_loader
from mla_plugin.models.concat import Concat


@registry.register_model("relearning")
class Relearning(Concat):
    NAME = "relearning"

    def build_head(self):
        super().build_head()
        cfg = self.config
        for key, low in (("relearn_period", 1), ("relearn_count", 0), ("relearn_seed", 0)):
            if int(cfg[key]) < low:
                raise ValueError(f"model_config.relearning.{key} must be >= {low}, got {cfg[key]}")
        if float(cfg.relearn_lambda) < 0:
            raise ValueError(
                f"model_config.relearning.relearn_lambda must be >= 0, got {cfg.relearn_lambda}"
            )

    def training_hooks(self):
        cfg = self.config
        return [
            RelearnHook(
                self,
                lam=float(cfg.relearn_lambda),
                period=int(cfg.relearn_period),
                count=int(cfg.relearn_count),
                seed=int(cfg.relearn_seed),
            )
        ]


@register_hook("relearning", model_hook=True)
class RelearnHook(TrainingHook):
    """Diagnoses and softly re-initialises the encoders (module docstring)."""

    def __init__(self, model, *, lam: float, period: int, count: int, seed: int):
        self.model, self.lam, self.period, self.count, self.seed = model, lam, period, count, seed
        # θ^(0): the encoders' weights as built (before any training or resume)
        self.initial = {
            m: [p.detach().clone() for p in enc.parameters()] for m, enc in model.encoders.items()
        }
        self.resets: list[dict] = []  # per re-initialisation: epoch, purities, alpha
        self.ctx = None

    def setup(self, ctx) -> None:
        self.ctx = ctx

    def due(self, epochs_done: int) -> bool:
        return (
            epochs_done > 0
            and epochs_done % self.period == 0
            and len(self.resets) < self.count
            and all(r["epoch"] != epochs_done for r in self.resets)
        )

    def on_train_epoch_start(self, epoch: int, num_batches: int) -> None:
        done = epoch - 1
        if not self.due(done):
            return
        ctx = self.ctx
        train = ctx.datasets["train"]
        splits = {
            "train": ctx.loader(train, torch.utils.data.SequentialSampler(train)),
            "val": heldout_loader(ctx),
        }
        purity = {s: self.purities(loader) for s, loader in splits.items()}
        alpha = {}
        for m, enc in self.model.encoders.items():
            alpha[m] = relearning_strength(purity["train"][m], purity["val"][m], self.lam)
            soft_reinit_(list(enc.parameters()), self.initial[m], alpha[m])
        self.resets.append({"epoch": done, "purity": purity, "alpha": alpha})
        ctx.writer.write(
            f"relearning at epoch {epoch}: "
            + ", ".join(
                f"{m} purity {purity['train'][m]:.3f}/{purity['val'][m]:.3f} alpha {a:.4f}"
                for m, a in alpha.items()
            )
        )

    @torch.no_grad()
    def purities(self, loader) -> dict[str, float]:
        """Each encoder's k-means purity over the loader's samples that have its modality."""
        model, modalities = self.model, self.model.modalities
        was_training = model.training
        model.eval()
        feats = {m: [] for m in modalities}
        labels = {m: [] for m in modalities}
        for batch in loader:
            batch = self.ctx.to_device(batch)
            h = model.encode(batch)
            present = model.presence(batch)
            for j, m in enumerate(modalities):
                keep = slice(None) if present is None else present[:, j]
                feats[m].append(h[m][keep].float().cpu())
                labels[m].append(batch.targets[keep].cpu())
        model.train(was_training)
        return {
            m: kmeans_purity(
                torch.cat(feats[m]), torch.cat(labels[m]), model.num_classes, self.seed
            )
            for m in modalities
        }

    def summary(self) -> dict:
        return {"resets": [dict(r) for r in self.resets]} if self.resets else {}

    def state_dict(self) -> dict:
        return {"initial": self.initial, "resets": [dict(r) for r in self.resets]}

    def load_state_dict(self, state: dict) -> None:
        self.initial = {m: [t.clone() for t in ts] for m, ts in state["initial"].items()}
        self.resets = [dict(r) for r in state.get("resets", [])]
