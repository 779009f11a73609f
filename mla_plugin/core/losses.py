"""Cross-entropy over the samples where a modality is present, and the scale-free
reconstruction error shared by the reconstruction-based baselines."""

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


RECON_SCALES = ("relative", "absolute")


def check_recon_scale(value: str, key: str) -> str:
    """``value`` if it is a known reconstruction scale, else an error naming ``key``."""
    if value not in RECON_SCALES:
        raise ValueError(f"{key} must be one of {list(RECON_SCALES)}, got {value!r}")
    return value


def target_mean_square(
    target: torch.Tensor, weight: torch.Tensor | None = None, floor: float = 1e-12
) -> torch.Tensor:
    """Detached ``Σ w·x² / Σ w``: the mean over the selected elements (``weight``
    broadcasts to ``target``; None = all), at least ``floor`` (no 0/0 when none is
    selected).  It is the divisor that makes a squared reconstruction error scale-free
    (``recon_scale: relative``): reconstructing ``c·x`` by ``c·x̂`` then gives the same
    loss for every c, so large features (unnormalised real inputs, or encoders whose scale
    nothing pins down, as under a correlation objective) cannot make the reconstruction
    term dominate the loss and diverge."""
    x = target.detach()
    if weight is None:
        return x.pow(2).mean().clamp(min=floor)
    w = weight.to(x.dtype).expand_as(x)
    return ((x.pow(2) * w).sum() / w.sum().clamp(min=1)).clamp(min=floor)


def scaled(
    loss: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None,
    scale: str,
    per_sample_dims: int = 1,
) -> torch.Tensor:
    """``loss`` unchanged (``absolute``, the papers' squared error) or divided by the target's
    mean square (``relative``; :func:`target_mean_square` times ``per_sample_dims`` when the
    loss sums over a sample's dimensions instead of averaging them)."""
    if scale == "absolute":
        return loss
    check_recon_scale(scale, "recon scale")
    return loss / (target_mean_square(target, weight) * per_sample_dims)
