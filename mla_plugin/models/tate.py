"""TATE -- Tag-Assisted Transformer Encoder (Zeng et al., SIGIR 2022) on our encoders
(:mod:`mla_plugin.core.tag_transformer`).

* tokens: the M encoder features, zero where a modality is missing, plus the embedded
  missing tag and a modality embedding; a ``tate_layers``-layer TransformerEncoder over them;
* fused logits from the flattened encoder output (no per-modality predictions:
  ``modality_scores`` is empty and their accuracies are null);
* loss ``CE + tate_forward_weight · L_forward + tate_backward_weight · L_backward``: in
  training, each sample with >= 2 present modalities has one of them hidden with
  probability ``tate_hide_prob`` (TATE masks complete training data; our training data is
  itself incomplete, so only present modalities can be hidden and have a target); the
  decoder imagines the hidden modalities' features (forward loss, detached targets) and,
  fed back with the inverted tag, recovers the visible ones (backward loss, MMIN's cycle).
* ``missing_fill: zeros``: the mask is ignored (every tag "present", zero-filled inputs
  encoded); hiding still applies in training.
"""

import torch
from mmf.common.registry import registry

from mla_plugin.core.hooks import Step
from mla_plugin.core.losses import masked_cross_entropy
from mla_plugin.core.tag_transformer import TagTransformer, hide_present, imagination_loss
from mla_plugin.models.base import MultimodalModel


@registry.register_model("tate")
class TATE(MultimodalModel):
    NAME = "tate"

    def build_head(self):
        cfg = self.config
        self._hide_prob = float(cfg.tate_hide_prob)
        if not 0.0 <= self._hide_prob <= 1.0:
            raise ValueError(
                f"model_config.tate.tate_hide_prob must be in [0, 1], got {self._hide_prob}"
            )
        self._forward_weight = float(cfg.tate_forward_weight)
        self._backward_weight = float(cfg.tate_backward_weight)
        self.head = TagTransformer(
            len(self.modalities),
            self.feature_dim,
            self.num_classes,
            layers=int(cfg.tate_layers),
            heads=int(cfg.tate_heads),
            ff_dim=int(cfg.tate_ff_dim),
            dropout=float(cfg.tate_dropout),
        )

    def _tokens(self, sample_list):
        features = self.encode(sample_list)
        tokens = torch.stack([features[m] for m in self.modalities], dim=1)
        present = self.presence(sample_list)
        full = present
        if full is None:
            full = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        return features, tokens, present, full

    def forward(self, sample_list):
        features, tokens, present, full = self._tokens(sample_list)
        out = self.head(tokens, full)
        return {
            "scores": out["logits"],
            "modality_scores": {},
            "features": features,
            "present": present,
        }

    def training_steps(self, sample_list, iteration):
        features, tokens, present, full = self._tokens(sample_list)
        visible = hide_present(full, self._hide_prob)
        out = self.head(tokens, visible)
        target = tokens.detach()
        hidden = full & ~visible
        forward = imagination_loss(out["reconstructed"], target, hidden)
        # the cycle: only samples with a hidden modality have something to feed back
        imagined = out["reconstructed"]
        back = self.head.backward_reconstruction(imagined, visible)
        cycle_cells = visible & hidden.any(dim=1, keepdim=True)
        backward = imagination_loss(back, target, cycle_cells)
        ce = masked_cross_entropy(out["logits"], sample_list.targets)
        loss = ce + self._forward_weight * forward + self._backward_weight * backward
        outputs = {
            "scores": out["logits"],
            "modality_scores": {},
            "features": features,
            "present": present,
            "tate_forward": forward.detach(),
            "tate_backward": backward.detach(),
        }
        yield Step(loss=loss, modality=None, features=features, outputs=outputs)
