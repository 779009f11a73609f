"""What every method shares: the encoders, the inputs read from MMF's SampleList, and
the default joint training step.  A method is a head plus, where it needs one, its own
``training_steps`` (MLA's alternation) or ``training_hooks`` (OGM-GE, QMF, MLA's HGM).
"""

import os
from collections.abc import Iterator

import torch
from mmf.models.base_model import BaseModel
from torch import nn

from mla_plugin.core.encoders import build_encoder, encoder_inputs
from mla_plugin.core.hooks import Step, TrainingHook
from mla_plugin.core.losses import masked_cross_entropy

CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "configs", "models")


class MultimodalModel(BaseModel):
    """Encoders h_m (one per modality, any M >= 2, common feature size) and a head.

    ``forward`` returns ``scores`` (fused logits), ``modality_scores`` (per-modality
    logits, the paper's unimodal predictions) and ``features``.
    """

    NAME = None
    # whether training_steps yields one Step per batch (one forward, one backward):
    # what training.grad_sync=ddp needs (DDP's reducer syncs once per forward)
    ONE_STEP_PER_BATCH = True

    @classmethod
    def config_path(cls):
        return os.path.join(CONFIG_DIR, f"{cls.NAME}.yaml")

    def build(self):
        cfg = self.config
        self.modalities: list[str] = list(cfg.modalities)
        if len(self.modalities) < 2:
            raise ValueError(
                f"model {self.NAME}: needs at least 2 modalities, got {self.modalities}"
            )
        missing = [m for m in self.modalities if m not in cfg.encoders]
        if missing:
            raise ValueError(f"model_config.{self.NAME}.encoders has no entry for {missing}")
        self.encoders = nn.ModuleDict({m: build_encoder(cfg.encoders[m]) for m in self.modalities})
        dims = {m: e.out_dim for m, e in self.encoders.items()}
        if len(set(dims.values())) != 1:
            raise ValueError(f"model {self.NAME}: encoders must share one feature size, got {dims}")
        self.feature_dim = next(iter(dims.values()))
        self.num_classes = int(cfg.num_classes)
        self.missing_fill = cfg.missing_fill
        if self.missing_fill not in ("skip", "zeros"):
            raise ValueError(f"missing_fill must be 'skip' or 'zeros', got {self.missing_fill!r}")
        self.build_head()

    def build_head(self):
        raise NotImplementedError

    def init_losses(self):
        """Each method computes its loss in :meth:`training_steps`; MMF's losses are unused."""

    def losses(self, sample_list, model_output) -> dict:
        """What MMF's ``BaseModel.__call__`` puts under ``"losses"`` when ``forward``
        returns none: nothing, since every method computes its loss in
        :meth:`training_steps` and nothing reads ``out["losses"]``.  (A ``forward``
        returning ``"losses"`` itself makes MMF warn on every run that it computes none.)"""
        return {}

    def presence(self, sample_list) -> torch.Tensor | None:
        """Per-sample presence [B, M]; None when every modality is present or when absent
        modalities are treated as zero-filled inputs (``missing_fill: zeros``)."""
        mask = sample_list.get("mask") if hasattr(sample_list, "get") else None
        if mask is None or self.missing_fill == "zeros" or bool(mask.all()):
            return None
        return mask.bool()

    def encode(self, sample_list, modalities=None) -> dict[str, torch.Tensor]:
        return {
            m: self.encoders[m](*encoder_inputs(self.encoders[m], sample_list, m))
            for m in (modalities or self.modalities)
        }

    def forward(self, sample_list):
        features = self.encode(sample_list)
        present = self.presence(sample_list)
        fused, unimodal = self.head(features, present)
        return {
            "scores": fused,
            "modality_scores": unimodal,
            "features": features,
            "present": present,
        }

    def training_steps(self, sample_list, iteration: int) -> Iterator[Step]:
        """Default: one joint step on the fused cross-entropy."""
        out = self(sample_list)
        loss = masked_cross_entropy(out["scores"], sample_list.targets)
        yield Step(loss=loss, modality=None, features=out["features"], outputs=out)

    def training_hooks(self) -> list[TrainingHook]:
        return []

    def zero_grad_between_steps(self) -> bool:
        """Whether gradients are zeroed (kept as tensors) rather than freed between the
        steps of one batch; only MLA's ``idle_encoder_momentum_step`` sets this."""
        return False
