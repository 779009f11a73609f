"""UMT and UME -- Uni-Modal Teacher and Uni-Modal Ensemble (Du et al., ICML 2023,
"On Uni-Modal Feature Learning in Supervised Multi-Modal Learning"), docs/baselines-notes.md
"UMT and UME":

* a unimodal model per modality (:class:`UnimodalTeacher`: its own encoder and linear head),
  trained on its own CE;
* UMT: the multimodal student's loss is CE(f(x)) + γ·Σ_m MSE(h_m, h_m^teacher), the teacher
  features from the trained unimodal encoders, frozen (:func:`feature_distillation`);
* UME: no joint training; the prediction is the average of the unimodal models' outputs
  (:func:`ensemble_average`: of their logits, or of their probabilities).
"""

from __future__ import annotations

import torch
from torch import nn

AVERAGES = ("logits", "probabilities")


class UnimodalTeacher(nn.Module):
    """An encoder (built by the caller) and a Linear(s -> C) head on its features."""

    def __init__(self, encoder: nn.Module, num_classes: int):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.out_dim, num_classes)

    def forward(self, *inputs) -> tuple[torch.Tensor, torch.Tensor]:
        """(features [B, s], logits [B, C])."""
        h = self.encoder(*inputs)
        return h, self.head(h)


def feature_distillation(
    student: torch.Tensor, teacher: torch.Tensor, present: torch.Tensor | None = None
) -> torch.Tensor:
    """MSE(h, h^teacher) averaged over the present samples' B×s entries; the teacher
    features are detached."""
    sq = (student.float() - teacher.detach().float()).pow(2).mean(dim=1)
    if present is None:
        return sq.mean()
    keep = present.to(sq.dtype)
    return (sq * keep).sum() / keep.sum().clamp(min=1)


def ensemble_average(
    unimodal_logits: dict[str, torch.Tensor], mask: torch.Tensor | None, *, average: str
) -> torch.Tensor:
    """The present modalities' mean: of the logits, or (``"probabilities"``) the log of
    the mean of their softmax probabilities (so argmax and CE read it as logits)."""
    if average not in AVERAGES:
        raise ValueError(f"average must be one of {AVERAGES}, got {average!r}")
    mods = list(unimodal_logits)
    ref = unimodal_logits[mods[0]]
    present = (
        torch.ones(ref.shape[0], len(mods), device=ref.device)
        if mask is None
        else mask.to(torch.float32)
    )
    count = present.sum(dim=1, keepdim=True).clamp(min=1)
    if average == "logits":
        total = sum(present[:, j : j + 1] * unimodal_logits[m].float() for j, m in enumerate(mods))
        return total / count
    probs = sum(
        present[:, j : j + 1] * torch.softmax(unimodal_logits[m].float(), dim=1)
        for j, m in enumerate(mods)
    )
    return torch.log((probs / count).clamp(min=1e-12))
