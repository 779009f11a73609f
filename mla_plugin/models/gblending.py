"""G-Blending (Wang, Tran, Feiszli, CVPR 2020) on top of Concat: K = M + 1 heads (one per
modality and the fused one), trained on ``Σ_k w_k CE_k`` (:mod:`mla_plugin.core.gblending`).

The weights come from :class:`GBlendHook`: at the start of every super-epoch (online; only
at the start with ``gblend_online: false``), for each head k a copy of the model is
trained on CE_k alone for ``gblend_super_epoch`` epochs, and the copy's train and held-out
(val, :func:`~mla_plugin.data.heldout.heldout_loader`) losses at the start and at the end
give G_k and O_k.  The main model is untouched by the copies; the copies' randomness is
forked off the run's, so the run's own random stream does not depend on the estimation.
The weights are a buffer of the model (in every checkpoint) and each estimation's G, O
and w are in the hook's state and summary.

Cost: an estimation trains K copies for a super-epoch each, so with the default online
schedule the run costs about (K + 1) times concat's (M = 2: about 4x), plus 4 no-grad
passes per head and estimation.

Switches (``configs/models/gblending.yaml``): ``gblend_heads`` (own heads | the fused
head's slices, BalanceBenchmark), ``gblend_gain`` (paper | abs), ``gblend_measure``
(checkpoint | after_first_epoch), ``gblend_reduction`` (mean | sum over batches),
``gblend_copy_optimizer`` (run: the run's optimizer class and settings, fresh state |
adamw: a fresh AdamW at lr 1e-3, BalanceBenchmark).  Missing modalities: a unimodal head's
CE (and its measured losses) count only the samples that have its modality.
"""

from __future__ import annotations

import copy
import inspect

import torch
from mmf.common.registry import registry
from torch import nn

from mla_plugin.core.gblending import GAINS, blend_weights, blended_loss
from mla_plugin.core.hooks import Step, TrainingHook, register_hook
from mla_plugin.core.losses import masked_cross_entropy
from mla_plugin.data.heldout import heldout_loader
from mla_plugin.models.concat import Concat

FUSED = "fused"
CHOICES = {
    "gblend_heads": ("own", "slices"),
    "gblend_gain": GAINS,
    "gblend_measure": ("checkpoint", "after_first_epoch"),
    "gblend_reduction": ("mean", "sum"),
    "gblend_copy_optimizer": ("run", "adamw"),
}


@registry.register_model("gblending")
class GBlending(Concat):
    NAME = "gblending"

    def build_head(self):
        super().build_head()
        cfg = self.config
        for key, choices in CHOICES.items():
            if cfg[key] not in choices:
                raise ValueError(
                    f"model_config.gblending.{key}: {cfg[key]!r} is not one of {list(choices)}"
                )
        if int(cfg.gblend_super_epoch) < 1:
            raise ValueError(
                f"model_config.gblending.gblend_super_epoch must be >= 1, got "
                f"{cfg.gblend_super_epoch}"
            )
        if FUSED in self.modalities:
            raise ValueError(f"model gblending: a modality may not be named {FUSED!r}")
        self.own_heads = cfg.gblend_heads == "own"
        if self.own_heads:
            self.heads = nn.ModuleDict(
                {m: nn.Linear(self.feature_dim, self.num_classes) for m in self.modalities}
            )
        self.branches = [*self.modalities, FUSED]
        k = len(self.branches)
        self.register_buffer("blend_weights", torch.full((k,), 1.0 / k))

    def forward(self, sample_list):
        out = super().forward(sample_list)
        if self.own_heads:
            out["modality_scores"] = {m: self.heads[m](out["features"][m]) for m in self.modalities}
        return out

    def branch_losses(self, out, targets) -> tuple[dict, dict]:
        """CE of every head, and the number of samples each counts."""
        present = out["present"]
        losses, counts = {}, {}
        for j, m in enumerate(self.modalities):
            mask = None if present is None else present[:, j].float()
            losses[m] = masked_cross_entropy(out["modality_scores"][m], targets, mask)
            counts[m] = len(targets) if mask is None else float(mask.sum())
        losses[FUSED] = masked_cross_entropy(out["scores"], targets)
        counts[FUSED] = len(targets)
        return losses, counts

    def training_steps(self, sample_list, iteration):
        out = self(sample_list)
        losses, _ = self.branch_losses(out, sample_list.targets)
        loss = blended_loss(losses, self.blend_weights, self.branches)
        yield Step(loss=loss, features=out["features"], outputs=out)

    def training_hooks(self):
        cfg = self.config
        seed = torch.initial_seed() if cfg.gblend_seed is None else int(cfg.gblend_seed)
        return [
            GBlendHook(
                self,
                super_epoch=int(cfg.gblend_super_epoch),
                online=bool(cfg.gblend_online),
                gain=cfg.gblend_gain,
                measure=cfg.gblend_measure,
                reduction=cfg.gblend_reduction,
                copy_optimizer=cfg.gblend_copy_optimizer,
                seed=int(seed),
            )
        ]


@register_hook("gblending", model_hook=True)
class GBlendHook(TrainingHook):
    """Estimates the blend weights at each super-epoch's start (module docstring)."""

    def __init__(self, model, *, super_epoch, online, gain, measure, reduction,
                 copy_optimizer, seed):  # fmt: skip
        self.model, self.super_epoch, self.online = model, super_epoch, online
        self.gain, self.measure, self.reduction = gain, measure, reduction
        self.copy_optimizer, self.seed = copy_optimizer, seed
        self.ctx = None
        self.estimates: list[dict] = []  # one per estimation: epoch, G, O, raw, w

    def setup(self, ctx) -> None:
        self.ctx = ctx

    def due(self, epochs_done: int) -> bool:
        if any(e["epoch"] == epochs_done for e in self.estimates):
            return False  # (a run resumed inside this super-epoch has its weights)
        return epochs_done % self.super_epoch == 0 if self.online else epochs_done == 0

    def on_train_epoch_start(self, epoch: int, num_batches: int) -> None:
        done = epoch - 1
        if not self.due(done):
            return
        devices = [self.ctx.device] if self.ctx.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed + done)
            losses = self.measure_heads(done)
        weights, parts = blend_weights(*losses, gain=self.gain)
        self.model.blend_weights.copy_(
            torch.tensor([weights[k] for k in self.model.branches], dtype=torch.float32)
        )
        self.estimates.append({"epoch": done, "weights": weights, "parts": parts})
        self.ctx.writer.write(
            "gblending weights from epoch "
            f"{done + 1}: " + ", ".join(f"{k} {w:.4f}" for k, w in weights.items())
        )

    # ---------------------------------------------------------------- estimation
    def measure_heads(self, epochs_done: int):
        """(L_T(start), L_T(end), L*(start), L*(end)) per head, each a dict."""
        ctx = self.ctx
        train = ctx.datasets["train"]
        shuffled = ctx.loader(
            train,
            torch.utils.data.RandomSampler(
                train, generator=torch.Generator().manual_seed(self.seed + epochs_done)
            ),
        )
        train_eval = ctx.loader(train, torch.utils.data.SequentialSampler(train))
        val = heldout_loader(ctx)
        out = ({}, {}, {}, {})
        for k in self.model.branches:
            model = copy.deepcopy(self.model)
            optimizer = self.optimizer_for(model)
            if self.measure == "checkpoint":
                out[0][k], out[2][k] = self.loss(model, train_eval, k), self.loss(model, val, k)
            for i in range(self.super_epoch):
                self.train_copy(model, optimizer, shuffled, k)
                if i == 0 and self.measure == "after_first_epoch":
                    out[0][k], out[2][k] = (
                        self.loss(model, train_eval, k),
                        self.loss(model, val, k),
                    )
            out[1][k], out[3][k] = self.loss(model, train_eval, k), self.loss(model, val, k)
        return out

    def optimizer_for(self, model) -> torch.optim.Optimizer:
        if self.copy_optimizer == "adamw":
            return torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
        run = self.ctx.optimizer
        accepted = inspect.signature(type(run).__init__).parameters
        settings = {k: v for k, v in run.param_groups[0].items() if k in accepted and k != "params"}
        return type(run)(model.parameters(), **settings)

    def train_copy(self, model, optimizer, loader, head: str) -> None:
        model.train()
        for batch in loader:
            batch = self.ctx.to_device(batch)
            losses, _ = model.branch_losses(model(batch), batch.targets)
            optimizer.zero_grad(set_to_none=True)
            losses[head].backward()
            optimizer.step()

    @torch.no_grad()
    def loss(self, model, loader, head: str) -> float:
        """The head's CE over the loader: per sample (``mean``) or the sum of the batch
        means (``sum``, BalanceBenchmark)."""
        model.eval()
        total, count = 0.0, 0.0
        for batch in loader:
            batch = self.ctx.to_device(batch)
            losses, counts = model.branch_losses(model(batch), batch.targets)
            if self.reduction == "sum":
                total += float(losses[head])
            else:
                total += float(losses[head]) * counts[head]
                count += counts[head]
        return total if self.reduction == "sum" else total / max(count, 1.0)

    def summary(self) -> dict:
        return {"estimates": [dict(e) for e in self.estimates]} if self.estimates else {}

    def state_dict(self) -> dict:
        return {"estimates": [dict(e) for e in self.estimates]}

    def load_state_dict(self, state: dict) -> None:
        self.estimates = [dict(e) for e in state.get("estimates", [])]
