"""MBSD as BalanceBenchmark implements it (its method list cites "Liu et al., 2023"; no
paper was checked here, docs/baselines-notes.md "MBSD"): the fused CE, each modality's
own CE on its slice logits, and for every pair of modalities (a, b) a per-sample weighted
self-distillation term on the slice logits z_a, z_b:

* weight w_i = |p_a,i[y_i] − p_b,i[y_i]| where either modality's argmax is right, else 0
  (and 0 where a or b is absent);
* representation similarity RS_i = ‖z_a,i − z_b,i‖² / C (on logits);
* the "KL" term of ``kl_div(input=ps, target=pw)`` with ps = max(p_a[y], p_b[y]) and
  pw = min(...): BalanceBenchmark passes a probability where a log-probability belongs,
  giving KL_i = pw·(log pw − ps) (``kl_input="probability"``, can be negative);
  ``"log_probability"`` passes log ps, giving the pointwise KL pw·(log pw − log ps);
* pair term (1/B)·Σ_i w_i·(RS_i + KL_i); the pairs' terms are averaged (BalanceBenchmark
  averages its three pairs for M = 3).  Nothing is detached, as there.
"""

from __future__ import annotations

import itertools

import torch

KL_INPUTS = ("probability", "log_probability")


def pair_distillation(
    z_a: torch.Tensor,
    z_b: torch.Tensor,
    targets: torch.Tensor,
    *,
    kl_input: str,
    both_present: torch.Tensor | None = None,
) -> torch.Tensor:
    """(1/B)·Σ_i w_i·(RS_i + KL_i) for one pair of modalities (see the module docstring)."""
    if kl_input not in KL_INPUTS:
        raise ValueError(f"kl_input must be one of {KL_INPUTS}, got {kl_input!r}")
    y = targets.view(-1, 1)
    p_a = torch.softmax(z_a.float(), dim=1).gather(1, y).squeeze(1)
    p_b = torch.softmax(z_b.float(), dim=1).gather(1, y).squeeze(1)
    right = (z_a.argmax(1) == targets) | (z_b.argmax(1) == targets)
    if both_present is not None:
        right = right & both_present
    w = (p_a - p_b).abs() * right.to(p_a.dtype)
    rs = (z_a.float() - z_b.float()).pow(2).sum(1) / z_a.shape[1]
    ps, pw = torch.maximum(p_a, p_b), torch.minimum(p_a, p_b)
    log_pw = torch.log(pw.clamp(min=1e-12))
    kl = pw * (log_pw - (ps if kl_input == "probability" else torch.log(ps.clamp(min=1e-12))))
    return (w * (rs + kl)).sum() / z_a.shape[0]


def mbsd_distillation(
    unimodal_logits: dict[str, torch.Tensor],
    targets: torch.Tensor,
    *,
    kl_input: str,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """The pairs' distillation terms, averaged over every pair of modalities."""
    mods = list(unimodal_logits)
    terms = []
    for (i, a), (j, b) in itertools.combinations(enumerate(mods), 2):
        both = None if mask is None else mask[:, i] & mask[:, j]
        terms.append(
            pair_distillation(
                unimodal_logits[a], unimodal_logits[b], targets, kl_input=kl_input,
                both_present=both,
            )
        )  # fmt: skip
    return sum(terms) / len(terms)
