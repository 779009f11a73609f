"""Gradient-Blending (Wang, Tran, Feiszli, CVPR 2020): the loss weights of a multi-head
network from each head's overfitting-to-generalisation ratio (OGR), framework-free.

* Sec. 3.2, Eq. (3)-(4): over an interval from checkpoint N to N + n, a head's
  generalisation gain is ``G = L*(N) - L*(N + n)`` (the held-out loss's drop) and its
  overfitting is ``O = (L*(N+n) - L_T(N+n)) - (L*(N) - L_T(N))`` (the growth of the
  held-out/train gap), with L* the held-out and L_T the train loss;
* Eq. (5)-(6) / Prop. 1: the optimal blend is ``w_k* ∝ G_k / O_k²``, normalised so that
  Σ_k w_k = 1;
* Eq. (2): the training loss is ``L = Σ_k w_k L_k`` over the heads (one per modality and
  the fused one).

The estimation itself (training copies of the model, measuring their losses) needs the
run's data and lives with the model (``mla_plugin/models/gblending.py``).
"""

from __future__ import annotations

import torch

GAINS = ("paper", "abs")


def blend_weights(
    train_start: dict[str, float],
    train_end: dict[str, float],
    val_start: dict[str, float],
    val_end: dict[str, float],
    *,
    gain: str,
    eps: float = 1e-12,
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """The normalised weights ``w_k ∝ G_k / O_k²`` of Eq. (6), and per head its G, O and
    raw weight.

    ``gain="paper"``: a head whose held-out loss rose (G < 0) generalised nothing and gets
    weight 0 (the paper's gain is a drop; a negative blend weight has no meaning);
    ``"abs"``: ``|G / O²|`` (BalanceBenchmark's code).  O² is floored at ``eps``.  When
    every raw weight is 0 the heads are weighted equally.
    """
    if gain not in GAINS:
        raise ValueError(f"gain must be one of {list(GAINS)}, got {gain!r}")
    raw, parts = {}, {}
    for k in train_start:
        g = val_start[k] - val_end[k]
        o = (val_end[k] - train_end[k]) - (val_start[k] - train_start[k])
        r = g / max(o * o, eps)
        r = abs(r) if gain == "abs" else max(r, 0.0)
        raw[k] = r
        parts[k] = {"G": g, "O": o, "raw": r}
    total = sum(raw.values())
    if total <= 0:
        return {k: 1.0 / len(raw) for k in raw}, parts
    return {k: r / total for k, r in raw.items()}, parts


def blended_loss(losses: dict[str, torch.Tensor], weights: torch.Tensor, heads: list[str]):
    """Eq. (2): ``Σ_k w_k L_k``, ``weights`` in the order of ``heads``."""
    return sum(weights[i] * losses[k] for i, k in enumerate(heads))
