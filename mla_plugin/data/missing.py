"""Missing-modality protocol: per-sample presence masks (docs/method-notes.md §6).

Two schemes:

- ``cpm_atleast1`` (the authors' code, after CPM-Net's ``random_mask``): every sample keeps
  at least one modality and the overall fraction of missing (sample, modality) cells is close
  to ``rate``. Re-implemented without CPM-Net's redraw loop: each sample first gets one kept
  modality chosen uniformly, then exactly ``round(N*M*(1-rate)) - N`` of the remaining cells
  are kept, chosen uniformly without replacement. The realised missing fraction is thus
  within ``0.5 / (N*M)`` of ``rate`` (<= 0.005 once N*M >= 100). When ``rate >= (M-1)/M``
  each sample keeps exactly one uniformly chosen modality, so the realised rate is
  ``(M-1)/M`` (e.g. 0.667 for eta = 0.7 and M = 3), as in the code.
- ``bernoulli`` (the paper's text): each cell is missing independently with probability
  ``rate``; a sample may then lose *all* its modalities.

Masks are drawn once (fixed across epochs) with a :class:`numpy.random.Generator`; use
:func:`split_seed` to give train/val/test independent draws.
"""

from __future__ import annotations

import zlib

import numpy as np

MASK_SCHEMES = ("cpm_atleast1", "bernoulli")


def split_seed(base_seed: int, split_name: str) -> int:
    """A fixed seed for ``split_name`` derived from ``base_seed``.

    Different split names (``"train"``, ``"val"``, ``"test"``, ...) give different seeds, so
    their masks are independent draws; the result is stable across processes and platforms
    (no use of Python's salted ``hash``).
    """
    tag = zlib.crc32(str(split_name).encode("utf-8"))
    seq = np.random.SeedSequence([int(base_seed) & 0xFFFFFFFF, tag])
    return int(seq.generate_state(1, dtype=np.uint32)[0])


def carve_mask(rng: np.random.Generator, n: int, fraction: float) -> np.ndarray:
    """Bool mask ``[n]`` with a random ``round(fraction * n)`` positions True (the val carve):
    one ``rng.permutation(n)`` draw picks them."""
    perm = rng.permutation(n)
    mask = np.zeros(n, dtype=bool)
    mask[perm[: int(round(float(fraction) * n))]] = True
    return mask


def make_presence_mask(
    num_samples: int,
    num_modalities: int,
    rate: float,
    scheme: str = "cpm_atleast1",
    seed: int = 0,
) -> np.ndarray:
    """Presence mask ``[num_samples, num_modalities]`` (True = modality present).

    Args:
        num_samples: N >= 0.
        num_modalities: M >= 1.
        rate: target fraction of missing cells, in [0, 1). 0 gives all True.
        scheme: ``"cpm_atleast1"`` or ``"bernoulli"`` (see the module docstring).
        seed: seed of the numpy Generator; the same arguments give the same mask.
    """
    if scheme not in MASK_SCHEMES:
        raise ValueError(
            f"unknown mask scheme {scheme!r}; valid schemes: {', '.join(MASK_SCHEMES)}"
        )
    rate = float(rate)
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"missing rate must be in [0, 1), got {rate}")
    if int(num_samples) < 0 or int(num_modalities) < 1:
        raise ValueError(
            f"need num_samples >= 0 and num_modalities >= 1, got {num_samples}, {num_modalities}"
        )
    n, m = int(num_samples), int(num_modalities)
    if rate == 0.0 or n == 0:
        return np.ones((n, m), dtype=bool)
    rng = np.random.default_rng(seed)
    if scheme == "bernoulli":
        return rng.random((n, m)) >= rate

    # cpm_atleast1: one guaranteed modality per sample ...
    mask = np.zeros((n, m), dtype=bool)
    mask[np.arange(n), rng.integers(0, m, size=n)] = True
    if rate >= (m - 1) / m:
        return mask
    # ... then exactly the number of extra kept cells that hits the target fraction.
    extra = int(round(n * m * (1.0 - rate))) - n
    free = np.flatnonzero(~mask.ravel())
    extra = min(max(extra, 0), free.size)
    mask.ravel()[rng.choice(free, size=extra, replace=False)] = True
    return mask
