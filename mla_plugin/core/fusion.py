"""Test-time fusion of the unimodal predictions, paper Eq. 5-7, plus the code's variants.

Logits come as one tensor [M, B, C] (or a sequence of M tensors [B, C]) in the modality order
used everywhere else; weights are [B, M]. ``present`` [B, M] (bool) marks which modalities a
sample has: absent ones get weight 0 and the others are renormalised (``skip_and_renormalise``);
pass ``present=None`` to fuse everything, zero-filled inputs included, as the code does.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F

Logits = torch.Tensor | Sequence[torch.Tensor]

RULES = ("entropy", "fixed", "mean")
ENTROPY_MODES = ("per_sample", "code_batch_dim0")
# The released code's fixed fusion weights, in its modality order (a, v[, t]); docs/method-notes.md §5.
CODE_FIXED_WEIGHTS: dict[int, tuple[float, ...]] = {2: (0.55, 0.45), 3: (0.35, 0.25, 0.40)}


def _stack(logits: Logits) -> torch.Tensor:
    stacked = logits if isinstance(logits, torch.Tensor) else torch.stack(list(logits))
    if stacked.dim() != 3:
        raise ValueError(f"logits must be [M, B, C], got shape {tuple(stacked.shape)}")
    return stacked


def _check_present(present: torch.Tensor) -> None:
    empty = (~present).all(dim=1).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"no modality present for sample(s) {empty}")


def _renormalise(weights: torch.Tensor, present: torch.Tensor | None) -> torch.Tensor:
    """Zero the absent modalities of ``weights`` [B, M] and rescale each row to sum 1."""
    if present is not None:
        _check_present(present)
        weights = weights * present.to(weights.dtype)
    total = weights.sum(dim=1, keepdim=True)
    bad = (total <= 0).flatten().nonzero().flatten().tolist()
    if bad:
        raise ValueError(
            f"fusion weights sum to zero over the present modalities of sample(s) {bad}"
        )
    return weights / total


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Eq. 6: e = −pᵀ log p with p = softmax over the last (class) axis; via log_softmax, no ε."""
    logp = F.log_softmax(logits, dim=-1)
    p = logp.exp()
    return -torch.where(p > 0, p * logp, torch.zeros_like(p)).sum(dim=-1)


def entropy_weights(
    logits_per_modality: Logits, present: torch.Tensor | None = None
) -> torch.Tensor:
    """Eq. 7, per sample: λ_{m,r} = softmax over the present modalities of −e_{m,r} -> [B, M].

    The max-shift of Eq. 7 is what ``torch.softmax`` does internally; absent modalities enter
    as −∞, i.e. weight 0 with the rest renormalised.
    """
    scores = -entropy(_stack(logits_per_modality)).T  # [B, M]
    if present is not None:
        _check_present(present)
        scores = scores.masked_fill(~present, float("-inf"))
    return torch.softmax(scores, dim=1)


def code_batch_dim0_weights(
    logits_per_modality: Logits, present: torch.Tensor | None = None
) -> torch.Tensor:
    """The code's dynamic fusion (docs/method-notes.md §5): one weight per modality per *batch*, -> [B, M].

    For each modality the softmax runs over dim 0 (the batch axis) of its B×C logits and
    −Σ p log p is summed over the whole batch; λ = softmax(−e) over modalities is then shared by
    every sample, so a sample's weights depend on the other samples in its batch. With
    ``present`` the shared weights are masked and renormalised per sample afterwards.
    """
    logits = _stack(logits_per_modality)
    logp = F.log_softmax(logits, dim=1)  # over the batch axis of each [B, C] matrix
    p = logp.exp()
    e = -torch.where(p > 0, p * logp, torch.zeros_like(p)).sum(dim=(1, 2))  # [M]
    weights = torch.softmax(-e, dim=0).expand(logits.shape[1], -1)
    return _renormalise(weights, present) if present is not None else weights.clone()


def fixed_weights(
    weights: Sequence[float],
    present: torch.Tensor | None = None,
    batch_size: int | None = None,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """Constant weights (e.g. :data:`CODE_FIXED_WEIGHTS`) -> [B, M], renormalised over the present
    modalities of each sample (weights that already sum to 1 are unchanged when all are present)."""
    w = torch.as_tensor(
        list(weights), dtype=torch.float32, device=present.device if present is not None else device
    )
    if (w < 0).any():
        raise ValueError(f"fixed fusion weights must be non-negative, got {list(weights)}")
    if present is not None:
        if present.shape[1] != len(w):
            raise ValueError(f"{len(w)} weights for {present.shape[1]} modalities")
        batch_size = present.shape[0]
    if batch_size is None:
        raise ValueError("give batch_size or present")
    return _renormalise(w.expand(batch_size, -1).clone(), present)


def mean_weights(
    num_modalities: int,
    present: torch.Tensor | None = None,
    batch_size: int | None = None,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """Equal weights over the present modalities -> [B, M]."""
    return fixed_weights([1.0] * num_modalities, present, batch_size, device)


def fuse_logits(logits_per_modality: Logits, weights: torch.Tensor) -> torch.Tensor:
    """Eq. 5: ŷ_r = Σ_m λ_{m,r} f_m(x_{m,r}), a weighted sum of *logits* -> [B, C].

    A modality with weight 0 contributes exactly 0, even if its logits are not finite.
    """
    logits = _stack(logits_per_modality)
    w = weights.T.unsqueeze(-1).to(logits.dtype)  # [M, B, 1]
    return torch.where(w > 0, w * logits, torch.zeros_like(logits)).sum(dim=0)


def fuse(
    logits_per_modality: Logits,
    *,
    rule: str,
    entropy_mode: str,
    fixed: Sequence[float] | None = None,
    present: torch.Tensor | None = None,
    return_weights: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Fuse with ``rule`` in :data:`RULES`; ``entropy_mode`` in :data:`ENTROPY_MODES` selects the
    paper's per-sample weights or the code's batch-level ones (read only by the entropy rule);
    ``fixed=None`` means :data:`CODE_FIXED_WEIGHTS`. Returns fused logits [B, C] (and the
    weights [B, M] if asked).  No defaults here: MLA's are ``fusion`` and ``fusion_entropy`` in
    ``mla_plugin/configs/models/mla.yaml``."""
    logits = _stack(logits_per_modality)
    num_modalities, batch_size = logits.shape[:2]
    if rule == "entropy":
        if entropy_mode == "per_sample":
            weights = entropy_weights(logits, present)
        elif entropy_mode == "code_batch_dim0":
            weights = code_batch_dim0_weights(logits, present)
        else:
            raise ValueError(
                f"unknown entropy_mode {entropy_mode!r}; valid: {', '.join(ENTROPY_MODES)}"
            )
    elif rule == "fixed":
        if fixed is None:
            if num_modalities not in CODE_FIXED_WEIGHTS:
                raise ValueError(
                    f"no default fixed weights for {num_modalities} modalities; pass fixed="
                )
            fixed = CODE_FIXED_WEIGHTS[num_modalities]
        if len(fixed) != num_modalities:
            raise ValueError(f"{len(fixed)} fixed weights for {num_modalities} modalities")
        weights = fixed_weights(fixed, present, batch_size, logits.device)
    elif rule == "mean":
        weights = mean_weights(num_modalities, present, batch_size, logits.device)
    else:
        raise ValueError(f"unknown fusion rule {rule!r}; valid: {', '.join(RULES)}")
    fused = fuse_logits(logits, weights)
    return (fused, weights) if return_weights else fused
