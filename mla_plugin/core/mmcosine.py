"""MMCosine, the multi-modal cosine loss (Xu, Feng, Zhang, Hu, ICASSP 2023, Eq. 3-4).

Each modality m has its own class weights W_m (rows w_{m,k}, no bias).  Its logits are the
scaled cosines between its feature and each class row,

    z_{m,k} = s · cos(h_m, w_{m,k}) = s · <h_m / |h_m|, w_{m,k} / |w_{m,k}|>,

and the fused logits are their sum z = Σ_m z_m, trained with the CE of z and used as they
are at inference.  Normalising both sides removes the weight and feature norms through
which a dominant modality takes over a concatenation head; s (``scale``) sets how peaked
the softmax of a bounded cosine can get.  An absent modality adds nothing to the sum.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def cosine_logits(features: torch.Tensor, weight: torch.Tensor, scale: float) -> torch.Tensor:
    """``scale · cos(h_i, w_k)`` for features [B, d] and class rows [C, d] -> [B, C]."""
    return scale * F.normalize(features, dim=1) @ F.normalize(weight, dim=1).t()


class CosineHead(nn.Module):
    """One bias-free weight [C, d] per modality; fused logits = Σ of the present
    modalities' cosine logits; per-modality logits = each modality's own cosine logits."""

    def __init__(self, modalities: Sequence[str], dim: int, num_classes: int, *, scale: float):
        super().__init__()
        if not scale > 0:
            raise ValueError(f"MMCosine scale must be > 0, got {scale}")
        self.modalities, self.scale = list(modalities), float(scale)
        self.weights = nn.ParameterDict(
            {m: nn.Parameter(torch.empty(num_classes, dim)) for m in self.modalities}
        )
        for w in self.weights.values():  # nn.Linear's default initialisation
            nn.init.kaiming_uniform_(w, a=5**0.5)

    def forward(self, features, mask: torch.Tensor | None = None):
        uni = {m: cosine_logits(features[m], self.weights[m], self.scale) for m in self.modalities}
        if mask is None:
            fused = sum(uni.values())
        else:
            present = mask.to(uni[self.modalities[0]].dtype)
            fused = sum(present[:, j : j + 1] * uni[m] for j, m in enumerate(self.modalities))
        return fused, uni
