"""Diagnosing & Re-learning (Wei, Li, Feng, Hu, ECCV 2024), framework-free: how well each
encoder's features separate the classes, on train and on held-out data, sets how far the
encoder is pulled back to its initial weights.

* Sec. 3.2 (diagnosis): the features of modality m are min-max scaled to [-1, 1] per
  dimension, clustered by k-means into C clusters (C = the number of classes), and the
  clustering's purity P (the fraction of samples whose cluster's majority label is their
  own) is measured on the train set and on a held-out set;
* Eq. (4): the re-learning strength is ``α_m = tanh(λ · |P_train,m - P_val,m|)``;
* Eq. (5): soft re-initialisation ``θ_m <- (1 - α_m) θ_m + α_m θ_m^(0)`` of every
  parameter of encoder m, θ^(0) its weights at initialisation.

The clustering is scikit-learn's :class:`~sklearn.cluster.KMeans`, seeded.
"""

from __future__ import annotations

import math

import torch


def minmax_scale(x: torch.Tensor) -> torch.Tensor:
    """Each column of ``x`` [N, d] mapped linearly onto [-1, 1] (a constant column to 0)."""
    lo, hi = x.min(dim=0).values, x.max(dim=0).values
    span = (hi - lo).clamp(min=1e-12)
    return torch.where(hi > lo, 2 * (x - lo) / span - 1, torch.zeros_like(x))


def cluster_purity(clusters: torch.Tensor, labels: torch.Tensor) -> float:
    """``(1/N) Σ_clusters max_label |cluster ∩ label|``."""
    if len(labels) == 0:
        raise ValueError("cluster purity of no samples")
    hits = 0
    for c in clusters.unique():
        hits += int(torch.bincount(labels[clusters == c]).max())
    return hits / len(labels)


def kmeans_purity(features: torch.Tensor, labels: torch.Tensor, num_clusters: int,
                  seed: int) -> float:  # fmt: skip
    """Purity of a seeded k-means clustering of the scaled features into ``num_clusters``
    (fewer when there are fewer distinct samples)."""
    from sklearn.cluster import KMeans

    x = minmax_scale(features.detach().double().cpu())
    k = max(1, min(num_clusters, len(torch.unique(x, dim=0))))
    km = KMeans(n_clusters=k, random_state=seed, n_init=10).fit(x.numpy())
    return cluster_purity(torch.as_tensor(km.labels_).long(), labels.cpu().long())


def relearning_strength(p_train: float, p_val: float, lam: float) -> float:
    """Eq. (4): ``tanh(λ · |P_train - P_val|)``."""
    return math.tanh(lam * abs(p_train - p_val))


@torch.no_grad()
def soft_reinit_(params, initial, alpha: float) -> None:
    """Eq. (5), in place: ``θ <- (1 - α) θ + α θ^(0)`` for each pair of tensors."""
    for p, p0 in zip(params, initial, strict=True):
        p.mul_(1.0 - alpha).add_(p0.to(p.device, p.dtype), alpha=alpha)
