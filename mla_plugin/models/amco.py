"""AMCo (Zhou et al., ICASSP 2023) on Concat: the dependent modality's slice logits are
masked class by class, more of them as the epoch goes on, and the fused loss is trained
together with each modality's own (:mod:`mla_plugin.core.amco`).

Per-modality accuracy uses the unmasked slice logits; evaluation never masks.  Switches
(``configs/models/amco.yaml``): ``amco_sigma``, ``amco_epsilon``, ``amco_growth``,
``amco_unimodal_loss``, ``amco_seed``.  Any M >= 2 (one softmax over the M blocks).
Missing modalities: features zero-filled as in Concat, an absent modality left out of its
CE and of its dependence measure.
"""

import torch
from mmf.common.registry import registry
from torch import nn

from mla_plugin.core.amco import AMCoState
from mla_plugin.core.hooks import Step
from mla_plugin.core.losses import masked_cross_entropy
from mla_plugin.models.concat import Concat


@registry.register_model("amco")
class AMCo(Concat):
    NAME = "amco"

    def build_head(self):
        super().build_head()
        cfg = self.config
        for key in ("amco_sigma", "amco_epsilon", "amco_growth"):
            if not float(cfg[key]) > 0:
                raise ValueError(f"model_config.amco.{key}: {cfg[key]!r} must be > 0")
        self.relabel = nn.Linear(self.num_classes, self.num_classes)  # L*, C x C
        self._unimodal_loss = bool(cfg.amco_unimodal_loss)
        self.amco_state = None  # the hook, built by training_hooks()

    def fuse(self, unimodal: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.relabel(torch.stack(list(unimodal.values())).sum(0))

    def forward(self, sample_list):
        features = self.encode(sample_list)
        present = self.presence(sample_list)
        _, unimodal = self.head(features, present)
        return {
            "scores": self.fuse(unimodal),
            "modality_scores": unimodal,
            "features": features,
            "present": present,
        }

    def training_steps(self, sample_list, iteration):
        features = self.encode(sample_list)
        present = self.presence(sample_list)
        _, unimodal = self.head(features, present)
        masks = self.amco_state.current_masks(self.num_classes) if self.amco_state else {}
        masked = {
            m: z * masks[m].to(z.device, z.dtype) if m in masks else z for m, z in unimodal.items()
        }
        fused = self.fuse(masked)
        loss = masked_cross_entropy(fused, sample_list.targets)
        if self._unimodal_loss:
            for j, m in enumerate(self.modalities):
                column = None if present is None else present[:, j]
                loss = loss + masked_cross_entropy(masked[m], sample_list.targets, column)
        yield Step(
            loss=loss,
            features=features,
            outputs={"scores": fused, "modality_scores": masked, "unmasked_scores": unimodal},
        )

    def training_hooks(self):
        cfg = self.config
        seed = torch.initial_seed() if cfg.amco_seed is None else int(cfg.amco_seed)
        self.amco_state = AMCoState(
            sigma=float(cfg.amco_sigma),
            epsilon=float(cfg.amco_epsilon),
            growth=float(cfg.amco_growth),
            seed=int(seed),
        )
        return [self.amco_state]
