"""LFM (Yang, Wan, Jiang and Xu, NeurIPS 2024, "Facilitating Multimodal Classification via
Dynamically Learning Modality Gap"): the supervised CE and an unsupervised cross-modal
alignment loss, mixed by a weight that changes during training.

    L = scale · [(1 - α) · CE(z) + α · mean over modality pairs (i, j) of Align_ij]

Alignment (``kind``):

* ``infonce``: the contrastive loss between the L2-normalised features of two modalities
  at temperature τ, averaged over both directions (the paper's contrastive term);
* ``js``: the Jensen-Shannon divergence of the two modalities' predicted distributions;
* ``bb_js``: BalanceBenchmark's "JS", ½[KL(m‖p) + KL(m‖q)] with m = (p + q)/2 (its
  ``kl_div`` arguments reversed).

The weight α (``weighting``):

* ``learned`` (the learning-based strategy): once per epoch a hypergradient step on
  held-out data.  One look-ahead step θ' = θ - η∇_θL_train, with
  L_train = (1 - α)CE + α·Align on a training batch, gives
  dCE_heldout(θ')/dα ≈ -η ⟨∇CE_heldout, ∇Align_train - ∇CE_train⟩, so
  α ← clip(α + lr_α ⟨∇CE_heldout, ∇Align_train - ∇CE_train⟩, low, high) (η folded into
  lr_α); BalanceBenchmark takes the inner gradients on its held-out batch too (then
  ∇CE_heldout·∇CE_heldout nearly always wins and α only falls); lr_α halves every
  ``halve_every`` epochs;
* ``fitted`` (the heuristic strategy): α(e) = Σ_i c_i e^i, the learning-fitted
  polynomial of the authors' code, e the 0-based epoch.
"""

import itertools

import torch
import torch.nn.functional as F

from .losses import masked_cross_entropy

ALIGNMENTS = ("infonce", "js", "bb_js")
WEIGHTINGS = ("learned", "fitted")
INNER_DATA = ("train", "heldout")
FITTED = (2.046237e-1, 3.354727e-3, 1.229896e-4, -2.929474e-6, 2.238355e-8, -5.397175e-11)


def js_divergence(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Mean over rows of ½[KL(p‖m) + KL(q‖m)], m = (p + q)/2 (probabilities)."""
    m = (p + q) / 2
    return 0.5 * (_kl(p, m) + _kl(q, m)).mean()


def bb_js_divergence(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """BalanceBenchmark's value: mean over rows of ½[KL(m‖p) + KL(m‖q)]."""
    m = (p + q) / 2
    return 0.5 * (_kl(m, p) + _kl(m, q)).mean()


def _kl(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    return (p * (p.clamp_min(1e-12).log() - q.clamp_min(1e-12).log())).sum(dim=1)


def info_nce(h_a: torch.Tensor, h_b: torch.Tensor, tau: float) -> torch.Tensor:
    """Symmetric InfoNCE: sample i of one modality against every sample of the other, the
    positive being sample i (cosine similarity / τ)."""
    a, b = F.normalize(h_a.float(), dim=1), F.normalize(h_b.float(), dim=1)
    logits = a @ b.t() / tau
    labels = torch.arange(len(a), device=a.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2


def alignment_loss(
    kind: str,
    features: dict[str, torch.Tensor],
    logits: dict[str, torch.Tensor],
    present: torch.Tensor | None,
    tau: float,
) -> torch.Tensor:
    """The mean over modality pairs of the alignment term, each pair over the samples that
    have both (a pair with fewer than 2 such samples contributes a zero)."""
    mods = list(features)
    terms = []
    for i, j in itertools.combinations(range(len(mods)), 2):
        a, b = mods[i], mods[j]
        rows = None if present is None else present[:, i] & present[:, j]
        if kind == "infonce":
            x, y = features[a], features[b]
        else:
            x, y = logits[a].float().softmax(dim=1), logits[b].float().softmax(dim=1)
        if rows is not None:
            x, y = x[rows], y[rows]
        if len(x) < 2:
            terms.append(features[a].sum() * 0.0)
        elif kind == "infonce":
            terms.append(info_nce(x, y, tau))
        elif kind == "js":
            terms.append(js_divergence(x, y))
        elif kind == "bb_js":
            terms.append(bb_js_divergence(x, y))
        else:
            raise ValueError(f"LFM alignment must be one of {list(ALIGNMENTS)}, got {kind!r}")
    return torch.stack(terms).mean()


def lfm_loss(ce: torch.Tensor, align: torch.Tensor, alpha: float, scale: float) -> torch.Tensor:
    return scale * ((1.0 - alpha) * ce + alpha * align)


def fitted_alpha(epoch0: int) -> float:
    """The learning-fitted polynomial at the 0-based epoch, clipped to [0, 1]."""
    value = sum(c * epoch0**i for i, c in enumerate(FITTED))
    return min(max(value, 0.0), 1.0)


def hypergradient_step(
    alpha: float,
    g_outer: list[torch.Tensor],
    g_ce: list[torch.Tensor],
    g_align: list[torch.Tensor],
    lr: float,
    low: float,
    high: float,
) -> float:
    """α + lr·⟨g_outer, g_align - g_ce⟩, clipped to [low, high]: ``g_outer`` the held-out
    CE's gradient, ``g_ce`` and ``g_align`` the inner (training) objective's two parts."""
    dot = sum(
        float((o.float() * (a.float() - c.float())).sum())
        for o, c, a in zip(g_outer, g_ce, g_align, strict=True)
    )
    return min(max(alpha + lr * dot, low), high)


def batch_gradients(model, batch, kind: str, tau: float, params) -> tuple[list, list]:
    """∇CE and ∇Align of ``model`` on one batch (eval mode: no dropout draws)."""
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            out = model(batch)
            ce = masked_cross_entropy(out["scores"], batch["targets"])
            align = alignment_loss(
                kind, out["features"], out["modality_scores"], out["present"], tau
            )
            g_ce = torch.autograd.grad(ce, params, retain_graph=True, allow_unused=True)
            g_al = torch.autograd.grad(align, params, allow_unused=True)
    finally:
        model.train(was_training)
    zero = [torch.zeros_like(p) for p in params]
    return (
        [z if g is None else g for g, z in zip(g_ce, zero, strict=True)],
        [z if g is None else g for g, z in zip(g_al, zero, strict=True)],
    )
