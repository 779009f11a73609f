"""Sample-level modality valuation and re-sampling (Wei, Feng, Wang, Hu, CVPR 2024,
"Enhancing Multimodal Cooperation via Sample-level Modality Valuation").

1. value of a coalition S of modalities for sample i: ``v(S) = 1`` when the prediction
   with only S (the others zeroed) is right, else 0; ``v(∅) = 0``; the full set is worth
   ``full_value`` when right (the official code: 2; BalanceBenchmark: 1);
2. each modality's Shapley contribution (:func:`shapley`)
   ``φ_m = Σ_{S ⊆ M∖{m}} |S|!(M-|S|-1)!/M! · [v(S ∪ {m}) - v(S)]``;
3. sample-level strategy (:func:`sample_copies`): sample i gets 1, 2 or 3 extra copies
   keeping only modality m when ``0.4 < φ_m < 1``, ``-0.1 < φ_m < 0.4`` or ``φ_m < -0.1``;
4. modality-level strategy (:func:`modality_resampling`): on a random part of the train
   set the mean contribution ``c̄_m`` gives gaps ``g_m = 1 - c̄_m``; ``R = ⌊2/3 · (g_max -
   g_min) · α · N⌋`` samples get a copy keeping only the largest-gap modality (for M = 2
   the paper's ``|g_a - g_v|``).  BalanceBenchmark's count sums over ordered pairs over
   M - 1 without α, and appends each chosen sample once per modality (the others as full
   copies): ``variant="balancebenchmark"``.
"""

import itertools
import math

import torch

COPY_BINS = ((0.4, 1.0, 1), (-0.1, 0.4, 2), (-math.inf, -0.1, 3))  # (low, high, copies), open


def coalitions(num_modalities: int) -> list[tuple[int, ...]]:
    """Every non-empty subset of range(M), as sorted tuples."""
    return [
        s
        for r in range(1, num_modalities + 1)
        for s in itertools.combinations(range(num_modalities), r)
    ]


def coalition_values(
    correct: dict[tuple[int, ...], torch.Tensor], num_modalities: int, full_value: float
) -> dict[tuple[int, ...], torch.Tensor]:
    """``v(S)`` [N] float from ``correct[S]`` [N] bool; the full set scaled by ``full_value``."""
    full = tuple(range(num_modalities))
    return {s: c.float() * (full_value if s == full else 1.0) for s, c in correct.items()}


def shapley(values: dict[tuple[int, ...], torch.Tensor], num_modalities: int) -> torch.Tensor:
    """[N, M] Shapley contributions from the coalition values (``v(∅) = 0``)."""
    M = num_modalities
    some = next(iter(values.values()))
    zero = torch.zeros_like(some)
    phi = torch.zeros(len(some), M, dtype=some.dtype)
    for m in range(M):
        others = [j for j in range(M) if j != m]
        for r in range(M):
            weight = math.factorial(r) * math.factorial(M - r - 1) / math.factorial(M)
            for s in itertools.combinations(others, r):
                with_m = tuple(sorted((*s, m)))
                phi[:, m] += weight * (values[with_m] - (values[s] if s else zero))
    return phi


def sample_copies(phi: torch.Tensor) -> torch.Tensor:
    """[N, M] long: copies of sample i keeping only modality m (bounds excluded)."""
    copies = torch.zeros(phi.shape, dtype=torch.long)
    for low, high, n in COPY_BINS:
        copies[(phi > low) & (phi < high)] = n
    return copies


def _floor(x: float) -> int:
    """``int(x)`` with a 1e-9 tolerance: a count whole in exact arithmetic stays whole."""
    return int(math.floor(x + 1e-9))


def modality_resampling(
    mean_contribution: torch.Tensor, num_samples: int, *, alpha: float, variant: str
) -> tuple[int, int]:
    """``(m_low, R)``: the largest-gap modality and how many samples to re-sample."""
    gaps = 1.0 - mean_contribution.double()
    low = int(torch.argmax(gaps))
    if variant == "paper":
        return low, _floor(2 / 3 * float(gaps.max() - gaps.min()) * alpha * num_samples)
    if variant == "balancebenchmark":
        M = len(gaps)
        pairs = sum(abs(float(gaps[a] - gaps[b])) for a in range(M) for b in range(M) if a != b)
        return low, _floor(2 / 3 * pairs / (M - 1) * num_samples)
    raise ValueError(f"unknown re-sampling variant {variant!r}")
