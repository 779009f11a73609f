"""CML (Ma et al., ICML 2023) on top of Concat: the fused CE plus a regulariser that
penalises a prediction from fewer modalities being more confident than one from more
(:mod:`mla_plugin.core.cml`).  A subset's logits are the Concat head with the features of
the modalities outside it zero-filled (its bias kept whole), so every subset reuses the
step's one encoding: the cost is a few extra head evaluations.

Switches (``configs/models/cml.yaml``): ``cml_lambda``, ``cml_variant`` (``paper`` |
``balancebenchmark``: one removal order per epoch, drawn by :class:`CMLOrderHook` from the
training seed and the epoch, so a resumed run draws the same).  Any M.  Missing
modalities: an absent modality's features are zero-filled in every subset, so removing it
changes nothing and adds no penalty.
"""

import torch
from mmf.common.registry import registry

from mla_plugin.core.cml import (
    VARIANTS,
    batch_sum_hinge,
    confidence,
    nested_pairs,
    per_sample_hinge,
    removal_chain,
)
from mla_plugin.core.hooks import Step, TrainingHook, register_hook
from mla_plugin.core.losses import masked_cross_entropy
from mla_plugin.models.concat import Concat


@register_hook("cml_order", model_hook=True)
class CMLOrderHook(TrainingHook):
    """BalanceBenchmark's per-epoch shuffle of the modality order, drawn from
    ``seed + epoch`` (no other state, so a resume draws the same order)."""

    def __init__(self, model, seed: int):
        self.model, self.seed = model, seed

    def on_train_epoch_start(self, epoch: int, num_batches: int) -> None:
        g = torch.Generator().manual_seed(self.seed + epoch)
        order = torch.randperm(len(self.model.modalities), generator=g).tolist()
        self.model.cml_order = [self.model.modalities[i] for i in order]

    def state_dict(self) -> dict:
        return {"seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        self.seed = int(state["seed"])


@registry.register_model("cml")
class CML(Concat):
    NAME = "cml"

    def build(self):
        super().build()
        if self.config.cml_variant not in VARIANTS:
            raise ValueError(
                f"model_config.cml.cml_variant must be one of {list(VARIANTS)}, "
                f"got {self.config.cml_variant!r}"
            )
        self.cml_order = list(self.modalities)

    def subset_logits(self, features, present, subset: frozenset) -> torch.Tensor:
        """The head's fused logits from the modalities of ``subset`` alone."""
        ref = features[self.modalities[0]]
        keep = torch.tensor([m in subset for m in self.modalities], device=ref.device)
        mask = keep.expand(ref.shape[0], -1)
        if present is not None:
            mask = mask & present
        return self.head(features, mask)[0]

    def training_steps(self, sample_list, iteration: int):
        out = self(sample_list)
        targets, present = sample_list.targets, self.presence(sample_list)
        lam = float(self.config.cml_lambda)
        logits = {frozenset(self.modalities): out["scores"]}

        def of(subset):
            if subset not in logits:
                logits[subset] = self.subset_logits(out["features"], present, subset)
            return logits[subset]

        if self.config.cml_variant == "paper":
            reg = sum(
                per_sample_hinge(confidence(of(small)), confidence(of(large)))
                for large, small in nested_pairs(self.modalities)
            )
            loss = masked_cross_entropy(out["scores"], targets) + lam * reg
        else:
            chain = [of(S) for S in removal_chain(self.cml_order)]
            ce = sum(masked_cross_entropy(z, targets) for z in chain) / len(chain)
            reg = sum(
                batch_sum_hinge(confidence(small), confidence(large))
                for large, small in zip(chain, chain[1:], strict=False)
            )
            loss = ce + lam * reg
        yield Step(loss=loss, modality=None, features=out["features"], outputs=out)

    def training_hooks(self):
        if self.config.cml_variant != "balancebenchmark":
            return []
        return [CMLOrderHook(self, int(torch.initial_seed()))]
