"""PMR, Prototypical Modal Rebalance (Fan et al., CVPR 2023), on top of Concat.

The loss (:func:`mla_plugin.core.pmr.pmr_loss`): the fused CE, plus the prototypical CE
of the slower modality and, in the first ``pmr_entropy_epochs`` epochs, minus the
prototypical entropy of the faster one.  The prototypes are class means of the encoder
outputs, recomputed without gradient at each epoch's start by the ``pmr`` hook from a
random ``pmr_prototype_fraction`` of the train split (a fixed draw per epoch from
``pmr_seed``; eval mode), blended with the previous ones by ``pmr_momentum``; they are the
hook's state, so a resumed run keeps them instead of recomputing them mid-epoch.
Per-modality logits: the head's slices, as Concat.  Missing modalities: a prototype
averages only the samples that have the modality, and an absent modality is left out of
its prototypical terms and scores.  Switches: ``configs/models/pmr.yaml``.
"""

import math

import torch
from mmf.common.registry import registry

from mla_plugin.core.hooks import Step, TrainingHook, register_hook
from mla_plugin.core.pmr import (
    COEFFICIENT_RULES,
    class_sums,
    pmr_loss,
    prototype_logits,
    update_prototypes,
)
from mla_plugin.models.concat import Concat


@register_hook("pmr", model_hook=True)
class PMRPrototypeHook(TrainingHook):
    """Recomputes the prototypes at each epoch's start (once per epoch, resume-safe) and
    records the mean coefficients per epoch (``summary()``)."""

    def __init__(self, model: "PMR", *, fraction: float, momentum: float, seed: int):
        self.model, self.fraction, self.momentum, self.seed = model, fraction, momentum, seed
        self.prototypes: dict[str, torch.Tensor] | None = None
        self.computed_for = 0  # the 1-based epoch whose start computed them
        self.ctx = None
        self.log: dict[int, dict] = {}

    def setup(self, ctx) -> None:
        self.ctx = ctx

    def on_train_epoch_start(self, epoch: int, num_batches: int) -> None:
        self.model.epoch = epoch
        if self.computed_for != epoch:
            self.compute(epoch)

    def sample_indices(self, epoch: int, size: int) -> list[int]:
        count = max(1, math.ceil(self.fraction * size))
        g = torch.Generator().manual_seed(self.seed * 100003 + epoch)
        return torch.randperm(size, generator=g)[:count].tolist()

    @torch.no_grad()
    def compute(self, epoch: int) -> None:
        ctx, model = self.ctx, self.model
        data = ctx.datasets["train"]
        loader = ctx.loader(data, self.sample_indices(epoch, len(data)))
        sums, counts = {}, {}
        was_training = model.training
        model.eval()
        try:
            for batch in loader:
                batch = ctx.to_device(batch)
                features, present = model.encode(batch), model.presence(batch)
                for j, m in enumerate(model.modalities):
                    have = None if present is None else present[:, j]
                    s, c = class_sums(features[m], batch.targets, model.num_classes, have)
                    sums[m] = s if m not in sums else sums[m] + s
                    counts[m] = c if m not in counts else counts[m] + c
        finally:
            model.train(was_training)
        old = self.prototypes or {}
        self.prototypes = {
            m: update_prototypes(old.get(m), sums[m], counts[m], self.momentum).float()
            for m in model.modalities
        }
        self.computed_for = epoch

    def on_before_optimizer_step(self, step: Step) -> None:
        entry = self.log.setdefault(
            step.epoch, {"steps": 0, "beta": {m: 0.0 for m in self.model.modalities}}
        )
        entry["steps"] += 1
        for m, b in step.outputs.get("pmr_beta", {}).items():
            entry["beta"][m] += b

    def summary(self) -> dict:
        return {
            "epochs": [
                {"epoch": e, "mean_beta": {m: b / max(v["steps"], 1) for m, b in v["beta"].items()}}
                for e, v in sorted(self.log.items())
            ]
        }

    def state_dict(self) -> dict:
        protos = (
            None if self.prototypes is None else {m: p.cpu() for m, p in self.prototypes.items()}
        )
        log = {e: {**v, "beta": dict(v["beta"])} for e, v in self.log.items()}
        return {"prototypes": protos, "computed_for": self.computed_for, "log": log}

    def load_state_dict(self, state: dict) -> None:
        self.prototypes = state["prototypes"]
        self.computed_for = int(state["computed_for"])
        self.log = {int(e): {**v, "beta": dict(v["beta"])} for e, v in state["log"].items()}


@registry.register_model("pmr")
class PMR(Concat):
    NAME = "pmr"

    def build_head(self):
        super().build_head()
        cfg = self.config
        key = "model_config.pmr."
        self.alpha = float(cfg.pmr_alpha)
        self.rule = cfg.pmr_coefficient
        self.entropy_weight = float(cfg.pmr_entropy_weight)
        self.entropy_epochs = int(cfg.pmr_entropy_epochs)
        self.fraction, self.momentum = float(cfg.pmr_prototype_fraction), float(cfg.pmr_momentum)
        if self.rule not in COEFFICIENT_RULES:
            raise ValueError(f"{key}pmr_coefficient must be one of {list(COEFFICIENT_RULES)}")
        if not 0 < self.fraction <= 1 or not 0 <= self.momentum <= 1:
            raise ValueError(
                f"{key}pmr_prototype_fraction must be in (0, 1], pmr_momentum in [0, 1]"
            )
        if self.alpha < 0 or self.entropy_weight < 0 or self.entropy_epochs < 0:
            raise ValueError(f"{key}pmr_alpha, pmr_entropy_weight, pmr_entropy_epochs must be >= 0")
        self.epoch = 1
        self.prototype_hook = None

    def training_hooks(self):
        seed = self.config.pmr_seed
        if seed is None:  # the training seed: the trainer seeds torch before building hooks
            seed = torch.initial_seed()
        self.prototype_hook = PMRPrototypeHook(
            self, fraction=self.fraction, momentum=self.momentum, seed=int(seed)
        )
        return [self.prototype_hook]

    def training_steps(self, sample_list, iteration):
        hook = self.prototype_hook
        if hook is None or hook.prototypes is None:
            raise RuntimeError(
                "model pmr: the prototypes are computed by its hook at each epoch's start"
            )
        out = self(sample_list)
        features, present = out["features"], out["present"]
        sims = {m: prototype_logits(features[m], hook.prototypes[m]) for m in self.modalities}
        early = self.epoch - 1 < self.entropy_epochs
        loss, beta, _ = pmr_loss(
            out["scores"],
            sims,
            sample_list.targets,
            present,
            alpha=self.alpha,
            rule=self.rule,
            entropy_weight=self.entropy_weight if early else 0.0,
        )
        yield Step(loss=loss, modality=None, features=features, outputs=dict(out, pmr_beta=beta))
