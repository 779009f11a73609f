"""PMR, Prototypical Modal Rebalance (Fan et al., CVPR 2023, Sec. 3.2-3.4).

1. **Prototypes** (Eq. 4): c_m^k, the mean feature of class k under modality m, computed
   without gradient at each epoch's start from part of the training set; from the second
   computation on, an exponential moving average c <- (1 - μ)·c_new + μ·c_old.
2. **Prototypical logits** (Eq. 5): sim_{m,k} = -|h_m - c_m^k|_2; the prototypical CE
   L_P,m = CE(sim_m) and the prototype score s^P_m = Σ_i softmax(sim_m,i)[y_i].
3. **Imbalance ratio and coefficients** (Eq. 6-8): ρ = s^P_a / s^P_v (M >= 3: each
   modality over the mean of the others, :func:`.ogm_ge.score_ratios` ``mean_others``).
   The slower modality (ρ_m < 1) gets the weight of its prototypical CE,
   ``scaled``: α·clip(1/ρ_m - 1, 0, 1) (grows with the imbalance, the paper's rule) or
   ``constant``: α (the authors' public code and BalanceBenchmark); the faster one gets 0.
4. **Prototypical entropy regulariser** (PER, Eq. 9), only in the early epochs: the faster
   modality (ρ_m > 1) is pushed away from premature confidence by maximising the entropy
   H_m of softmax(sim_m), weighted by μ_H·α·clip(ρ_m - 1, 0, 1) (``constant``: μ_H·α).
5. **Loss**: CE(fused) + Σ_m β_m·L_P,m - Σ_m e_m·H_m.
"""

import torch
import torch.nn.functional as F

from .losses import masked_cross_entropy
from .ogm_ge import discrepancy_scores, score_ratios

COEFFICIENT_RULES = ("scaled", "constant")


def prototype_logits(features: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    """-|h_i - c_k|_2 for features [B, d] and prototypes [C, d] -> [B, C]."""
    c = prototypes.to(device=features.device, dtype=features.dtype)
    diff = features.unsqueeze(1) - c.unsqueeze(0)
    return -(diff.pow(2).sum(dim=2) + 1e-12).sqrt()


def class_sums(
    features: torch.Tensor, targets: torch.Tensor, num_classes: int, weight: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class feature sums [C, d] and counts [C] (float64) over the samples with
    ``weight`` true (None: all)."""
    w = torch.ones_like(targets, dtype=torch.float64) if weight is None else weight.double()
    onehot = F.one_hot(targets, num_classes).double() * w.unsqueeze(1)
    return onehot.t() @ features.detach().double(), onehot.sum(dim=0)


def update_prototypes(
    old: torch.Tensor | None, sums: torch.Tensor, counts: torch.Tensor, momentum: float
) -> torch.Tensor:
    """New class means, blended with ``old`` as (1 - μ)·new + μ·old; a class with no sample
    keeps its old prototype (zeros before the first)."""
    seen = counts > 0
    new = torch.zeros_like(sums)
    new[seen] = sums[seen] / counts[seen].unsqueeze(1)
    if old is None:
        return new
    old = old.to(new.dtype)
    blended = (1.0 - momentum) * new + momentum * old
    return torch.where(seen.unsqueeze(1), blended, old)


def prototype_scores(
    logits: dict[str, torch.Tensor], targets: torch.Tensor, mask: torch.Tensor | None
) -> dict[str, torch.Tensor]:
    """s^P_m = Σ_i softmax(sim_m,i)[y_i] over the samples that have m (detached)."""
    return discrepancy_scores(logits, targets, mask)


def pmr_coefficients(
    scores: dict[str, torch.Tensor], *, alpha: float, rule: str
) -> tuple[dict[str, float], dict[str, float]]:
    """(β_m, e_m): the prototypical CE weight of each slower modality and the entropy
    weight (before μ_H) of each faster one; two modalities: ρ = s_a / s_v."""
    if rule not in COEFFICIENT_RULES:
        raise ValueError(f"PMR coefficient rule must be one of {COEFFICIENT_RULES}, got {rule!r}")
    ratios = score_ratios(scores, extension="mean_others")
    beta, entropy = {}, {}
    for m, rho in ratios.items():
        slow, fast = rho < 1.0, rho > 1.0
        if rule == "constant":
            beta[m], entropy[m] = alpha * slow, alpha * fast
        else:
            beta[m] = alpha * min(max(1.0 / rho - 1.0, 0.0), 1.0) if rho > 0 else alpha * slow
            entropy[m] = alpha * min(max(rho - 1.0, 0.0), 1.0) if fast else 0.0
    return beta, entropy


def pmr_loss(
    fused: torch.Tensor,
    proto_logits: dict[str, torch.Tensor],
    targets: torch.Tensor,
    present: torch.Tensor | None,
    *,
    alpha: float,
    rule: str,
    entropy_weight: float,
) -> tuple[torch.Tensor, dict[str, float], dict[str, float]]:
    """CE(fused) + Σ β_m·L_P,m - μ_H·Σ e_m·H_m (``entropy_weight`` μ_H, 0 = no PER);
    returns the loss, β and the entropy weights.  An absent modality is left out of its
    terms and of its score; one that no sample of the batch has is not compared (its
    weights are 0, and with fewer than two compared modalities every weight is 0)."""
    scores = prototype_scores(proto_logits, targets, present)
    if present is not None:  # a modality no sample of the batch has is not compared
        scores = {m: s for j, (m, s) in enumerate(scores.items()) if bool(present[:, j].any())}
    beta, ent = {m: 0.0 for m in proto_logits}, {m: 0.0 for m in proto_logits}
    if len(scores) >= 2:
        found = pmr_coefficients(scores, alpha=alpha, rule=rule)
        beta.update(found[0])
        ent.update(found[1])
    loss = masked_cross_entropy(fused, targets)
    for j, (m, sim) in enumerate(proto_logits.items()):
        have = None if present is None else present[:, j].to(sim.dtype)
        if beta[m] > 0:
            loss = loss + beta[m] * masked_cross_entropy(sim, targets, have)
        if entropy_weight > 0 and ent[m] > 0:
            p = torch.softmax(sim, dim=1)
            h = -(p * torch.log_softmax(sim, dim=1)).sum(dim=1)
            h = h.mean() if have is None else (h * have).sum() / have.sum().clamp(min=1)
            loss = loss - entropy_weight * ent[m] * h
    return loss, beta, {m: entropy_weight * e for m, e in ent.items()}
