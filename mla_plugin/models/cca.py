"""CCA (Hotelling 1936) as a Table-2 baseline: linear canonical projections of the
encoders' features, concatenated and classified.

* z_m = W_m h_m (``cca_dim`` = k outputs per modality);
* loss ``CE(fused) - cca_corr_weight · corr`` with corr the total correlation of
  :func:`mla_plugin.core.correlation.pairwise_total_correlation` (all k directions,
  regularised covariances ``cca_reg``; the sum over modality pairs for M > 2);
* *linear* CCA: the correlation term sees the features detached, so it fits only the
  projections W_m (at its optimum, Hotelling's top-k canonical directions of the current
  features), and the classifier sees z_m through W_m detached, so the cross-entropy trains
  the encoders and the classifier but never W_m.  This is the single-stage stand-in for the
  two-stage pipeline (CCA on fixed features, then a classifier on the projections);
* classifier: :class:`~mla_plugin.core.fusion_heads.ConcatHead` on cat(z_1..z_M) (as in
  GCNet's use of these baselines); per-modality logits are its slices (+ bias/M);
* missing modalities: the correlation uses only the samples that have both modalities of
  a pair; an absent modality's z_m is filled (``cca_fill``: zeros, or its running mean
  over the training samples that had it, momentum ``cca_mean_momentum``).
"""

import torch
import torch.nn.functional as F
from mmf.common.registry import registry
from torch import nn

from mla_plugin.core.correlation import (
    fill_missing,
    pairwise_total_correlation,
    update_running_means,
)
from mla_plugin.core.fusion_heads import ConcatHead
from mla_plugin.core.hooks import Step
from mla_plugin.core.losses import masked_cross_entropy
from mla_plugin.models.base import MultimodalModel


@registry.register_model("cca")
class CCA(MultimodalModel):
    NAME = "cca"
    # linear CCA fits W_m on detached features; DCCA trains the encoders with it
    DEEP = False

    def build_head(self):
        cfg = self.config
        where = f"model_config.{self.NAME}"
        self.cca_dim = int(cfg.cca_dim)
        if not 1 <= self.cca_dim:
            raise ValueError(f"{where}.cca_dim must be a positive integer, got {cfg.cca_dim}")
        self.cca_reg = float(cfg.cca_reg)
        if self.cca_reg <= 0:
            raise ValueError(
                f"{where}.cca_reg must be > 0 (the covariances' ridge r1 = r2), got {cfg.cca_reg}"
            )
        self.corr_weight = float(cfg.cca_corr_weight)
        self.fill = cfg.cca_fill
        if self.fill not in ("zeros", "mean"):
            raise ValueError(f"{where}.cca_fill must be 'zeros' or 'mean', got {self.fill!r}")
        self.mean_momentum = float(cfg.cca_mean_momentum)
        if not 0 < self.mean_momentum <= 1:
            raise ValueError(
                f"{where}.cca_mean_momentum must be in (0, 1], got {cfg.cca_mean_momentum}"
            )
        self.top_k = self._top_k()
        self.projections = nn.ModuleDict(
            {m: nn.Linear(self.feature_dim, self.cca_dim) for m in self.modalities}
        )
        for j in range(len(self.modalities)):
            self.register_buffer(f"cca_mean_{j}", torch.zeros(self.cca_dim))
        self.head = ConcatHead(self.modalities, self.cca_dim, self.num_classes)

    def _top_k(self):
        """Linear CCA keeps all k = ``cca_dim`` directions (their sum is the trace norm)."""
        return None

    def running_means(self) -> dict[str, torch.Tensor]:
        return {m: getattr(self, f"cca_mean_{j}") for j, m in enumerate(self.modalities)}

    def project(self, features):
        """(z for the classifier, z for the correlation term)."""
        if self.DEEP:
            z = {m: self.projections[m](h) for m, h in features.items()}
            return z, z
        cls, corr = {}, {}
        for m, h in features.items():
            p = self.projections[m]
            cls[m] = F.linear(h, p.weight.detach(), p.bias.detach())
            corr[m] = p(h.detach())
        return cls, corr

    def forward(self, sample_list):
        features = self.encode(sample_list)
        present = self.presence(sample_list)
        z, views = self.project(features)
        if self.training and self.fill == "mean":
            update_running_means(self.running_means(), z, present, self.mean_momentum)
        filled = fill_missing(z, present, self.fill, self.running_means())
        fused, unimodal = self.head(filled)
        return {
            "scores": fused,
            "modality_scores": unimodal,
            "features": features,
            "present": present,
            "cca_views": views,
        }

    def objective(self, out, sample_list) -> dict[str, torch.Tensor]:
        """The loss terms: ``ce`` and ``corr`` (maximised)."""
        ce = masked_cross_entropy(out["scores"], sample_list.targets)
        corr = pairwise_total_correlation(
            out["cca_views"], out["present"], self.cca_reg, self.cca_reg, self.top_k, self.NAME
        )
        return {"ce": ce, "corr": corr}

    def total_loss(self, terms) -> torch.Tensor:
        return terms["ce"] - self.corr_weight * terms["corr"]

    def training_steps(self, sample_list, iteration):
        out = self(sample_list)
        terms = self.objective(out, sample_list)
        outputs = dict(out, **{f"cca_{k}": v.detach() for k, v in terms.items()})
        yield Step(
            loss=self.total_loss(terms), modality=None, features=out["features"], outputs=outputs
        )
