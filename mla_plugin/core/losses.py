"""Cross-entropy over the samples where a modality is present."""

import torch
import torch.nn.functional as F


def masked_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, present: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean CE over the present samples (all when ``present`` is None); an all-absent
    batch gives a zero that still depends on ``logits`` so backward stays defined."""
    if present is None:
        return F.cross_entropy(logits, targets)
    losses = F.cross_entropy(logits, targets, reduction="none")
    count = present.sum()
    return (losses * present).sum() / count.clamp(min=1)
