"""CML -- Calibrating Multimodal Learning (Ma et al., ICML 2023), written from the paper's
principle (Sec. 3: removing modalities must not raise the prediction's confidence) and its
regularised objective (Sec. 4), docs/baselines-notes.md "CML":

* Conf(x^S) = max_c softmax(f(x^S))_c, the confidence of the prediction from the subset S
  of modalities (those outside S left out: zero-filled features in a Concat head);
* paper (``variant="paper"``): for every nested pair S' = S ∖ {m} ⊂ S (|S'| >= 1), the
  per-sample hinge ``mean_i max(0, Conf(x_i^{S'}) − Conf(x_i^{S}))``, summed over the
  pairs; the loss is CE(f(x^N)) + λ·that sum;
* BalanceBenchmark (``"balancebenchmark"``): one removal order per epoch; the chain
  N ⊃ N∖{o_1} ⊃ ... down to one modality; the loss averages the chain's CE terms and adds
  λ·Σ_links max(0, Σ_i (Conf_i(smaller) − Conf_i(larger))): the batch summed *before*
  the hinge, so over- and under-confident samples cancel.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch

VARIANTS = ("paper", "balancebenchmark")


def confidence(logits: torch.Tensor) -> torch.Tensor:
    """Conf = max_c softmax(logits)_c per sample [B]."""
    return torch.softmax(logits.float(), dim=1).max(dim=1).values


def nested_pairs(modalities: Sequence[str]) -> list[tuple[frozenset, frozenset]]:
    """Every (S, S ∖ {m}) with |S| >= 2, largest S first: the paper's nested subsets."""
    mods = list(modalities)
    pairs = []
    for size in range(len(mods), 1, -1):
        for subset in itertools.combinations(mods, size):
            S = frozenset(subset)
            pairs.extend((S, S - {m}) for m in subset)
    return pairs


def removal_chain(order: Sequence[str]) -> list[frozenset]:
    """N, N ∖ {o_1}, N ∖ {o_1, o_2}, ... down to one modality (BalanceBenchmark)."""
    chain = [frozenset(order)]
    for m in list(order)[:-1]:
        chain.append(chain[-1] - {m})
    return chain


def per_sample_hinge(conf_smaller: torch.Tensor, conf_larger: torch.Tensor) -> torch.Tensor:
    """mean_i max(0, Conf_i(S') − Conf_i(S)) (the paper)."""
    return torch.relu(conf_smaller - conf_larger).mean()


def batch_sum_hinge(conf_smaller: torch.Tensor, conf_larger: torch.Tensor) -> torch.Tensor:
    """max(0, Σ_i (Conf_i(S') − Conf_i(S))) (BalanceBenchmark)."""
    return torch.relu((conf_smaller - conf_larger).sum())
