"""OPM, On-the-fly Prediction Modulation (Wei, Hu, Du, Wen, TPAMI 2024, Sec. 4.2).

Each training step, while modulation runs:

1. the discrepancy ratio ρ_m of the batch scores s_m (:func:`.ogm_ge.score_ratios`; two
   modalities: ρ_a = s_a / s_v);
2. r_m = tanh(ReLU(ρ_m - 1)): only a dominant modality (ρ > 1) gets r > 0;
3. its drop probability q_m = min(1, q_base·(1 + λ·r_m)); the others keep q = 0;
4. with probability p_exe the batch is modulated: each sample's whole feature vector h_m is
   kept with probability 1 - q_m (one Bernoulli draw per sample and modality), and every
   kept feature is scaled by 1 / (1 - θ), θ = Σ_m d_m q_m / Σ_m d_m, the expected share of
   dropped feature dimensions (the same factor reaches the gradients through autograd);
5. the fused CE is taken over the samples that kept at least one (present) modality.

No dropping at inference.
"""

import math

import torch


def drop_probabilities(
    ratios: dict[str, float], *, q_base: float, strength: float
) -> dict[str, float]:
    """q_m = min(1, q_base·(1 + λ·tanh(ReLU(ρ_m - 1)))) where ρ_m > 1, else 0
    (``strength`` is λ)."""
    q = {}
    for m, rho in ratios.items():
        r = math.tanh(max(rho - 1.0, 0.0)) if math.isfinite(rho) else 1.0
        q[m] = min(1.0, q_base * (1.0 + strength * r)) if r > 0 else 0.0
    return q


def feature_scale(q: dict[str, float], dims: dict[str, int]) -> float:
    """1 / (1 - θ) with θ = Σ_m d_m q_m / Σ_m d_m (inf when every dimension is dropped)."""
    theta = sum(dims[m] * q[m] for m in q) / sum(dims[m] for m in q)
    return math.inf if theta >= 1.0 else 1.0 / (1.0 - theta)


def drop_features(
    features: dict[str, torch.Tensor],
    q: dict[str, float],
    present: torch.Tensor | None,
    scale: float,
    generator: torch.Generator | None = None,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Features with each sample's vector of modality m zeroed with probability q_m and
    the kept ones scaled by ``scale``; returns them and the samples that keep at least one
    present modality (Bool [B]).  ``present``: Bool [B, M] in ``features``' order or None.
    The draws use ``generator`` (None: torch's global generator, which checkpoints save)."""
    mods = list(features)
    ref = features[mods[0]]
    draws = torch.rand(ref.shape[0], len(mods), generator=generator, device=ref.device)
    keep = draws >= torch.tensor([q[m] for m in mods], device=ref.device)
    if present is not None:
        keep = keep & present.bool()
    survivors = keep.any(dim=1)
    if not math.isfinite(scale):  # every dimension dropped: nothing survives
        scale = 0.0
    dropped = {
        m: features[m] * (keep[:, j : j + 1].to(features[m].dtype) * scale)
        for j, m in enumerate(mods)
    }
    return dropped, survivors
