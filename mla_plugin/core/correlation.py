"""CCA-family losses and blocks (Table 2 baselines CCA, DCCA and DCCAE).

Notation of Andrew et al. 2013 ("Deep Canonical Correlation Analysis", ICML, Sec. 2-3):
for two views H_1 [N, o_1] and H_2 [N, o_2] (rows = samples, here; the paper uses columns),
centred H̄ = H - mean,

    Σ̂_12 = H̄_1ᵀ H̄_2 / (N - 1),   Σ̂_11 = H̄_1ᵀ H̄_1 / (N - 1) + r_1 I,   Σ̂_22 likewise with r_2,
    T = Σ̂_11^{-1/2} Σ̂_12 Σ̂_22^{-1/2},

and the total correlation of the top k canonical directions is the sum of the k largest
singular values of T (k = o: the trace norm ||T||_tr = tr((TᵀT)^{1/2})).  Linear CCA
(Hotelling 1936) is the same quantity maximised over linear projections of fixed features;
DCCA maximises it over the parameters of the two networks.

DCCAE (Wang et al. 2015, "On Deep Multi-View Representation Learning", ICML) minimises
``-corr(f_1(X_1), f_2(X_2)) + λ Σ_m (1/N) Σ_i ||x_mi - g_m(f_m(x_mi))||²``; the second
term is :func:`reconstruction_loss`.

Computation: Σ̂^{-1/2} is replaced by the inverse Cholesky factor L^{-1} (Σ̂ = L Lᵀ).  Since
L^{-1} = Q Σ̂^{-1/2} for an orthogonal Q, T' = L_1^{-1} Σ̂_12 L_2^{-T} = Q_1 T Q_2ᵀ has the
same singular values as T, and Cholesky's backward pass stays finite where an
eigendecomposition's (1/(λ_i - λ_j)) would not for (near-)repeated eigenvalues.
"""

from itertools import combinations

import torch

from mla_plugin.core.losses import scaled


def covariances(
    h1: torch.Tensor, h2: torch.Tensor, r1: float, r2: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(Σ̂_11, Σ̂_22, Σ̂_12) of Andrew et al. 2013 Sec. 3 for views [N, o_1], [N, o_2]."""
    n = h1.shape[0]
    if n < 2 or h2.shape[0] != n:
        raise ValueError(
            f"covariances need N >= 2 paired samples, got {h1.shape[0]}, {h2.shape[0]}"
        )
    c1, c2 = h1 - h1.mean(0, keepdim=True), h2 - h2.mean(0, keepdim=True)
    eye1 = torch.eye(h1.shape[1], dtype=h1.dtype, device=h1.device)
    eye2 = torch.eye(h2.shape[1], dtype=h2.dtype, device=h2.device)
    s11 = c1.t() @ c1 / (n - 1) + r1 * eye1
    s22 = c2.t() @ c2 / (n - 1) + r2 * eye2
    s12 = c1.t() @ c2 / (n - 1)
    return s11, s22, s12


def canonical_correlations(
    h1: torch.Tensor, h2: torch.Tensor, r1: float, r2: float, method: str = "cca"
) -> torch.Tensor:
    """Singular values of T (descending): the regularised canonical correlations.

    Computed in at least float32 with autocast off (half-precision Cholesky/SVD is
    unsupported or unstable).  Non-finite features are an error saying training diverged
    (naming ``method``), and so are features so large that the ridge falls below the
    covariance's floating-point precision; a covariance of moderate features that is not
    positive definite is an error asking for a larger ridge."""
    for i, h in enumerate((h1, h2), 1):
        if not bool(torch.isfinite(h).all()):
            raise ValueError(
                f"model {method}: the features of view {i} are not finite (NaN or inf): "
                f"training diverged before the canonical correlations; the ridge (cca_reg) "
                f"is not the cause -- look at the loss terms' magnitudes in the log"
            )
    dtype = torch.promote_types(h1.dtype, torch.float32)
    with torch.autocast(device_type=h1.device.type, enabled=False):
        s11, s22, s12 = covariances(h1.to(dtype), h2.to(dtype), r1, r2)
        l1, info1 = torch.linalg.cholesky_ex(s11)
        l2, info2 = torch.linalg.cholesky_ex(s22)
        if int(info1) or int(info2):
            if not bool(torch.isfinite(s11).all() and torch.isfinite(s22).all()):
                raise ValueError(
                    f"model {method}: the features' covariance is not finite (the features are "
                    f"too large for {dtype}): training diverged before the canonical "
                    f"correlations; the ridge (cca_reg) is not the cause -- look at the loss "
                    f"terms' magnitudes in the log"
                )
            var = max(float(s11.diagonal().max()), float(s22.diagonal().max()))
            if 0 < min(r1, r2) < var * torch.finfo(dtype).eps:
                raise ValueError(
                    f"model {method}: the features are too large (largest feature variance "
                    f"{var:.3g}): the ridge r1={r1}, r2={r2} is below the covariance's "
                    f"{dtype} precision, so training has diverged (or the features need "
                    f"normalising); a larger cca_reg is not the fix -- look at the loss "
                    f"terms' magnitudes in the log"
                )
            raise ValueError(
                f"model {method}: canonical correlations: a view's covariance + r I is not "
                f"positive definite (r1={r1}, r2={r2}, largest feature variance {var:.3g}); "
                f"use a larger ridge (cca_reg), or, if that variance is huge, training diverged"
            )
        left = torch.linalg.solve_triangular(l1, s12, upper=False)  # L_1^{-1} Σ_12
        t = torch.linalg.solve_triangular(l2, left.t(), upper=False).t()  # ... L_2^{-T}
        return torch.linalg.svdvals(t)


def total_correlation(
    h1: torch.Tensor,
    h2: torch.Tensor,
    r1: float,
    r2: float,
    top_k: int | None = None,
    method: str = "cca",
) -> torch.Tensor:
    """corr(H_1, H_2): the sum of the ``top_k`` largest canonical correlations (all of
    them, the trace norm of T, when ``top_k`` is None) -- the DCCA objective."""
    rho = canonical_correlations(h1, h2, r1, r2, method)
    return rho.sum() if top_k is None else rho[:top_k].sum()


def pairwise_total_correlation(
    views: dict[str, torch.Tensor],
    present: torch.Tensor | None,
    r1: float,
    r2: float,
    top_k: int | None = None,
    method: str = "cca",
) -> torch.Tensor:
    """Σ over modality pairs (m < n, in ``views``' order) of corr(H_m, H_n) on the samples
    that have both (``present`` [B, M], columns in ``views``' order; None = all present).
    M = 2 is DCCA's objective; the sum over pairs is our extension to M > 2.  A pair with
    fewer than 2 shared samples adds nothing (a zero that keeps the graph)."""
    names = list(views)
    first = views[names[0]]
    total = first.sum() * 0.0
    for (i, a), (j, b) in combinations(enumerate(names), 2):
        ha, hb = views[a], views[b]
        if present is not None:
            both = present[:, i] & present[:, j]
            ha, hb = ha[both], hb[both]
        if ha.shape[0] < 2:
            continue
        total = total + total_correlation(ha, hb, r1, r2, top_k, method)
    return total


def reconstruction_loss(
    target: torch.Tensor,
    reconstruction: torch.Tensor,
    present: torch.Tensor | None = None,
    scale: str = "absolute",
) -> torch.Tensor:
    """(1/N) Σ_i ||x_i - g(f(x_i))||² over the samples where the view is present (DCCAE's
    reconstruction term, Wang et al. 2015); zero (keeping the graph) when none is.
    ``scale="relative"`` divides it by (1/N) Σ_i ||x_i||² over the same samples (detached;
    :func:`mla_plugin.core.losses.scaled`): a scale-free error, our stable default."""
    target, reconstruction = target.flatten(1), reconstruction.flatten(1)
    err = (target - reconstruction).pow(2).sum(1)
    if present is None:
        loss, weight = err.mean(), None
    else:
        p = present.to(err.dtype)
        loss, weight = (err * p).sum() / p.sum().clamp(min=1), p[:, None]
    return scaled(loss, target, weight, scale, per_sample_dims=target.shape[1])


def fill_missing(
    z: dict[str, torch.Tensor],
    present: torch.Tensor | None,
    fill: str,
    means: dict[str, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """Fill an absent modality's representation: ``zeros`` (0) or ``mean`` (its running
    mean ``means[m]`` over the training samples that had it).  ``present`` [B, M] is in
    ``z``'s order; None returns ``z`` unchanged."""
    if fill not in ("zeros", "mean"):
        raise ValueError(f"fill must be 'zeros' or 'mean', got {fill!r}")
    if present is None:
        return dict(z)
    out = {}
    for j, (m, v) in enumerate(z.items()):
        keep = present[:, j : j + 1].to(v.dtype)
        other = torch.zeros_like(v) if fill == "zeros" else means[m].to(v.dtype).expand_as(v)
        out[m] = keep * v + (1 - keep) * other
    return out


@torch.no_grad()
def update_running_means(
    means: dict[str, torch.Tensor],
    z: dict[str, torch.Tensor],
    present: torch.Tensor | None,
    momentum: float,
) -> None:
    """mean_m ← (1 - momentum) mean_m + momentum · mean of z_m over the present samples
    (in place; a modality absent from the whole batch is left unchanged)."""
    for j, (m, v) in enumerate(z.items()):
        rows = v if present is None else v[present[:, j]]
        if rows.shape[0]:
            means[m].mul_(1 - momentum).add_(momentum * rows.detach().mean(0))
