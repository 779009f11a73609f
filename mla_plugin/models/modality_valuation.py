"""Modality valuation (Wei et al., CVPR 2024) on Concat: after a warm-up, at each epoch's
end every (or a random part of the) training sample's modalities are valued by their
Shapley contribution to a right prediction, and the next epoch trains on the train split
plus copies that keep only the low-value modality (:mod:`mla_plugin.core.modality_valuation`).

The valuation runs the encoders once per batch, without gradients and in eval mode, and
the concat head once per coalition of modalities (2^M - 1; the others' features zeroed,
as Concat zero-fills an absent modality).  The re-sampled examples reach the trainer
through its per-epoch examples (``RunContext.set_train_examples``, docs/trainer.md); the
hook keeps them in its state, so a resume trains on the same examples.

Switches (``configs/models/modality_valuation.yaml``): ``mv_strategy`` (modality |
sample), ``mv_full_value``, ``mv_part_ratio``, ``mv_alpha``, ``mv_warmup``,
``mv_count`` (paper | balancebenchmark).  Any M >= 2.  Missing modalities: an absent
modality is valued 0, left out of the mean contribution and never kept alone in a copy.
"""

import torch
from mmf.common.registry import registry

from mla_plugin.core import modality_valuation as mv
from mla_plugin.core.hooks import TrainingHook, register_hook
from mla_plugin.models.concat import Concat

STRATEGIES = ("modality", "sample")
COUNTS = ("paper", "balancebenchmark")


@registry.register_model("modality_valuation")
class ModalityValuation(Concat):
    NAME = "modality_valuation"

    def build_head(self):
        super().build_head()
        cfg = self.config
        for key, valid in (("mv_strategy", STRATEGIES), ("mv_count", COUNTS)):
            if cfg[key] not in valid:
                raise ValueError(
                    f"model_config.{self.NAME}.{key}: {cfg[key]!r} is not one of {list(valid)}"
                )
        if not 0 < float(cfg.mv_part_ratio) <= 1:
            raise ValueError(
                f"model_config.{self.NAME}.mv_part_ratio: {cfg.mv_part_ratio!r} must be in (0, 1]"
            )

    @torch.no_grad()
    def coalition_correct(self, batch) -> dict[tuple[int, ...], torch.Tensor]:
        """Per coalition S, whether the prediction with only S's features is right [B]."""
        features = self.encode(batch)
        mask = batch.get("mask")
        base = torch.ones(
            len(batch.targets), len(self.modalities), dtype=torch.bool, device=batch.targets.device
        )
        if mask is not None and self.missing_fill == "skip":
            base = mask.bool()
        out = {}
        for s in mv.coalitions(len(self.modalities)):
            keep = torch.zeros(len(self.modalities), dtype=torch.bool, device=base.device)
            keep[list(s)] = True
            fused, _ = self.head(features, base & keep)
            out[s] = (fused.argmax(1) == batch.targets).cpu()
        return out

    def training_hooks(self):
        cfg = self.config
        return [
            Revaluation(
                self,
                strategy=cfg.mv_strategy,
                full_value=float(cfg.mv_full_value),
                part_ratio=float(cfg.mv_part_ratio),
                alpha=float(cfg.mv_alpha),
                warmup=int(cfg.mv_warmup),
                count=cfg.mv_count,
            )
        ]


@register_hook("modality_valuation", model_hook=True)
class Revaluation(TrainingHook):
    """At the end of each epoch from ``warmup`` on (1-based), values the train split and
    sets the next epoch's examples; its state holds them (``indices``, ``keep``)."""

    def __init__(self, model, *, strategy, full_value, part_ratio, alpha, warmup, count):
        self.model, self.strategy, self.full_value = model, strategy, full_value
        self.part_ratio, self.alpha, self.warmup, self.count = part_ratio, alpha, warmup, count
        self.examples = None  # (indices [K], keep [K, M]) of the coming epochs
        self.log: list[dict] = []

    def setup(self, ctx) -> None:
        self.ctx = ctx

    def on_train_epoch_end(self, epoch: int) -> None:
        ctx = self.ctx
        if epoch < self.warmup or ctx.training_done():
            return
        n = len(ctx.datasets["train"])
        g = torch.Generator().manual_seed(ctx.seed * 100003 + epoch)
        if self.strategy == "sample":
            part = torch.arange(n)
        else:
            part = torch.randint(n, (max(1, int(self.part_ratio * n)),), generator=g)
        phi, present = self.value(part)
        M = len(self.model.modalities)
        if self.strategy == "sample":
            copies = mv.sample_copies(phi) * present
            i, m = copies.nonzero(as_tuple=True)
            reps = copies[i, m]
            extra_i, extra_m = i.repeat_interleave(reps), m.repeat_interleave(reps)
            extra_keep = torch.nn.functional.one_hot(extra_m, M).bool()
            entry = {"epoch": epoch, "copies": int(reps.sum())}
        else:
            mean = (phi * present).sum(0) / present.sum(0).clamp(min=1)
            low, count = mv.modality_resampling(mean, n, alpha=self.alpha, variant=self.count)
            extra_i, extra_keep = self.modality_copies(low, count, g)
            entry = {"epoch": epoch, "low": self.model.modalities[low], "copies": len(extra_i),
                     "mean_contribution": [round(float(x), 6) for x in mean]}  # fmt: skip
        indices = torch.cat([torch.arange(n), extra_i])
        keep = torch.cat([torch.ones(n, M, dtype=torch.bool), extra_keep])
        self.examples = (indices, keep)
        self.log.append(entry)
        ctx.set_train_examples(indices, keep)

    def modality_copies(self, low, count, generator):
        """``count`` samples that have modality ``low`` (drawn with replacement): a copy
        keeping only ``low``; with ``mv_count: balancebenchmark`` each also once per other
        modality as a full copy."""
        M = len(self.model.modalities)
        has_low = torch.nonzero(self.presence_of_train()[:, low]).flatten()
        if count == 0 or len(has_low) == 0:
            return torch.zeros(0, dtype=torch.long), torch.zeros(0, M, dtype=torch.bool)
        chosen = has_low[torch.randint(len(has_low), (count,), generator=generator)]
        only = torch.nn.functional.one_hot(torch.full((count,), low), M).bool()
        if self.count == "paper":
            return chosen, only
        full = torch.ones(count * (M - 1), M, dtype=torch.bool)
        return torch.cat([chosen, chosen.repeat(M - 1)]), torch.cat([only, full])

    def presence_of_train(self) -> torch.Tensor:
        """[N, M] presence of the train split's samples (all True without masks)."""
        if getattr(self, "_presence", None) is None:
            n, M = len(self.ctx.datasets["train"]), len(self.model.modalities)
            self._presence = torch.ones(n, M, dtype=torch.bool)
            for batch in self.ctx.loader(self.ctx.datasets["train"], range(n)):
                if "mask" in batch and self.model.missing_fill == "skip":
                    self._presence[batch["index"]] = batch["mask"].bool()
        return self._presence

    def value(self, part: torch.Tensor):
        """Shapley contributions [P, M] of the samples ``part`` and their presence."""
        ctx, model = self.ctx, self.model
        was_training = model.training
        model.eval()
        correct: dict = {}
        for batch in ctx.loader(ctx.datasets["train"], part.tolist()):
            with ctx.amp.autocast():
                for s, c in model.coalition_correct(ctx.to_device(batch)).items():
                    correct.setdefault(s, []).append(c)
        model.train(was_training)
        M = len(model.modalities)
        values = mv.coalition_values(
            {s: torch.cat(c) for s, c in correct.items()}, M, self.full_value
        )
        return mv.shapley(values, M), self.presence_of_train()[part]

    def summary(self) -> dict:
        return {"resampling": [dict(e) for e in self.log]} if self.log else {}

    def state_dict(self) -> dict:
        return {"examples": self.examples, "log": [dict(e) for e in self.log]}

    def load_state_dict(self, state: dict) -> None:
        self.log = [dict(e) for e in state["log"]]
        self.examples = state["examples"]
        if self.examples is not None:
            self.ctx.set_train_examples(*self.examples)
