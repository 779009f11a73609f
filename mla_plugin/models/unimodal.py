"""Unimodal: one chosen modality alone -- its encoder and a Linear(s -> C) head, trained
on its CE.  The lower bound every fusion should beat.

* ``modality``: ``first`` (the first listed modality) or a modality name.  The other
  modalities are not encoded (no encoder is built for them).
* ``scores`` (the ``multi`` accuracy) = that modality's logits, over every sample of the
  split; ``modality_scores`` holds only the chosen modality, so in ``metrics.json`` its
  accuracy is a number and the other modalities' are ``null`` (no prediction).
* Missing modalities: with ``missing_fill: skip`` the loss leaves out the samples that lack
  the chosen modality (a batch without it takes no step); at evaluation such samples are
  predicted from the dataset's zero-filled input, so ``multi`` counts them (mostly as
  errors) while the modality's own accuracy counts only the samples that have it.
  ``missing_fill: zeros`` also trains on the zero-filled inputs.
"""

from mmf.common.registry import registry
from torch import nn

from mla_plugin.core.encoders import build_encoder, encoder_inputs
from mla_plugin.core.hooks import Step
from mla_plugin.core.losses import masked_cross_entropy
from mla_plugin.models.base import MultimodalModel


@registry.register_model("unimodal")
class Unimodal(MultimodalModel):
    NAME = "unimodal"

    def build(self):
        cfg = self.config
        self.modalities = list(cfg.modalities)  # all of the dataset's (mask columns, metrics)
        choice = cfg.modality
        choice = self.modalities[0] if choice == "first" else choice
        if choice not in self.modalities:
            raise ValueError(
                f"model_config.unimodal.modality: {choice!r} is not one of {self.modalities}"
            )
        if choice not in cfg.encoders:
            raise ValueError(f"model_config.unimodal.encoders has no entry for {choice!r}")
        self.modality = choice
        self.modality_index = self.modalities.index(choice)
        self.encoders = nn.ModuleDict({choice: build_encoder(cfg.encoders[choice])})
        self.feature_dim = self.encoders[choice].out_dim
        self.num_classes = int(cfg.num_classes)
        self.missing_fill = cfg.missing_fill
        if self.missing_fill not in ("skip", "zeros"):
            raise ValueError(f"missing_fill must be 'skip' or 'zeros', got {self.missing_fill!r}")
        self.head = nn.Linear(self.feature_dim, self.num_classes)

    def forward(self, sample_list):
        m = self.modality
        features = {m: self.encoders[m](*encoder_inputs(self.encoders[m], sample_list, m))}
        logits = self.head(features[m])
        return {
            "scores": logits,
            "modality_scores": {m: logits},
            "features": features,
        }

    def training_steps(self, sample_list, iteration):
        mask = self.presence(sample_list)
        present = None if mask is None else mask[:, self.modality_index]
        if present is not None and not bool(present.any()):
            return
        out = self(sample_list)
        loss = masked_cross_entropy(out["scores"], sample_list.targets, present)
        yield Step(
            loss=loss,
            modality=self.modality,
            modality_index=self.modality_index,
            features=out["features"],
            outputs=out,
        )
