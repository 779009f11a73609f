"""ReconBoost (Hua et al., ICML 2024): alternating boosting of unimodal learners,
framework-free.

The ensemble is ``F(x) = β Σ_m g_m(x_m)`` (Sec. 3, Eq. (1)), β a learnable boost rate.
A round boosts one modality m, the others fixed:

* Eq. (3)-(4), the boosting loss: with ``p = softmax(β Σ_{k≠m} g_k)`` (no gradient) and
  ``q = softmax(g_m)``, each sample's CE on q is weighted by ``(w1 - w2 · p[y]) / C``, so
  the samples the other learners already get right count less;
* Eq. (5), the reconcilement term: ``α · MSE(softmax(g_m), softmax(g_prev))``, g_prev the
  learner of the previous round (fixed); its gradient flows through ``softmax(g_m)``
  (the official code detaches both sides, so the term does nothing: ``detached=True``);
* then a global rectification: CE of F over every learner and β (Sec. 3.3).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def boosting_weights(joint_logits: torch.Tensor, targets: torch.Tensor, *, w1: float,
                     w2: float) -> torch.Tensor:  # fmt: skip
    """Per-sample weights ``(w1 - w2 · softmax(joint)[y]) / C`` (no gradient)."""
    p = torch.softmax(joint_logits.detach().float(), dim=1)
    p_true = p.gather(1, targets.view(-1, 1)).squeeze(1)
    return (w1 - w2 * p_true) / joint_logits.shape[1]


def boosting_loss(
    logits: torch.Tensor,
    joint_logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    w1: float,
    w2: float,
    present: torch.Tensor | None = None,
) -> torch.Tensor:
    """Eq. (4): the mean over the (present) samples of the weighted CE of ``logits``."""
    weights = boosting_weights(joint_logits, targets, w1=w1, w2=w2)
    ce = F.cross_entropy(logits.float(), targets, reduction="none")
    per_sample = weights * ce
    if present is None:
        return per_sample.mean()
    present = present.to(per_sample.dtype)
    return (per_sample * present).sum() / present.sum().clamp(min=1)


def reconcilement_loss(
    logits: torch.Tensor,
    previous_logits: torch.Tensor,
    *,
    detached: bool,
    present: torch.Tensor | None = None,
) -> torch.Tensor:
    """Eq. (5) without α: the mean squared difference of the two softmax outputs, over
    the (present) samples and the classes; ``detached`` cuts its gradient (official
    code)."""
    q = torch.softmax(logits.float(), dim=1)
    if detached:
        q = q.detach()
    diff = (q - torch.softmax(previous_logits.detach().float(), dim=1)).pow(2).mean(dim=1)
    if present is None:
        return diff.mean()
    present = present.to(diff.dtype)
    return (diff * present).sum() / present.sum().clamp(min=1)
