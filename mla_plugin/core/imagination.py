"""Imputation and imagination of missing modalities' features: the shared blocks of the
Table-2 methods AE, CRA, MMIN and IF-MMIN (``docs/baselines.md``, "Table 2 methods").

Every function works on the *joint* feature vector ``x = [h_1 ∥ ... ∥ h_M]`` [B, M·s]
(modalities in a fixed order, s the common feature size) and a per-cell presence mask
``keep`` Bool [B, M]; an absent modality's slot of ``x`` is zero.

* :class:`AutoEncoder` -- an MLP encoder to a latent and a mirrored decoder (Bengio et
  al. 2006 as the MLA paper cites it; the AE baseline of MMIN and GCNet);
* :class:`ResidualCascade` -- the cascaded residual autoencoder (Tran et al. 2017, CRA):
  ``x̂_0 = x``, ``x̂_k = x̂_{k-1} + f_k([x̂_{k-1} ∥ c])``, each ``f_k`` an autoencoder, ``c``
  an optional conditioning vector (IF-MMIN's invariant feature guiding its imagination
  module IF-IM, Zuo et al. 2023);
* :func:`draw_missing_condition` -- MMIN's training conditions (Zhao et al. 2021): a
  missing-condition input built from a sample by dropping some of its present modalities;
* :func:`masked_mse` -- a squared error over selected cells (CRA's reconstruction loss,
  MMIN's forward and backward imagination losses);
* :func:`cmd` -- the empirical central moment discrepancy CMD_K (Zellinger et al. 2017), the
  distance IF-MMIN minimises between modalities' invariant features (its L_cmd).

Equation numbers are not quoted: the papers' PDFs were not at hand; each formula is written
out in the docstring that implements it.
"""

import itertools
from collections.abc import Sequence

import torch
from torch import nn

from mla_plugin.core.losses import scaled


def joint(features: dict[str, torch.Tensor], modalities: Sequence[str]) -> torch.Tensor:
    """``[h_1 ∥ ... ∥ h_M]`` [B, M·s] in the order of ``modalities``."""
    return torch.cat([features[m] for m in modalities], dim=1)


def cell_slots(keep: torch.Tensor, dim: int) -> torch.Tensor:
    """Per-cell mask [B, M] expanded to the joint vector's slots [B, M·dim]."""
    return keep.repeat_interleave(dim, dim=1)


def zero_filled(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """``x`` with the slots of the cells not in ``keep`` set to zero."""
    dim = x.shape[1] // keep.shape[1]
    return x * cell_slots(keep, dim).to(x.dtype)


def fill_missing(x: torch.Tensor, imputed: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """``[available ∥ imagined]``: the kept cells from ``x``, the others from ``imputed``."""
    dim = x.shape[1] // keep.shape[1]
    return torch.where(cell_slots(keep, dim), x, imputed)


def masked_mse(
    pred: torch.Tensor, target: torch.Tensor, cells: torch.Tensor, scale: str = "absolute"
) -> torch.Tensor:
    """Mean squared error over the slots of the selected cells ``cells`` [B, M]:
    ``Σ_selected (pred - target)² / (#cells · s)``; zero (still depending on ``pred``, so
    backward is defined) when no cell is selected.  ``scale="relative"`` divides it by the
    target's mean square over the same slots (detached; :func:`mla_plugin.core.losses.scaled`),
    a scale-free error."""
    dim = pred.shape[1] // cells.shape[1]
    weight = cell_slots(cells, dim).to(pred.dtype)
    count = cells.sum() * dim
    loss = ((pred - target) ** 2 * weight).sum() / count.clamp(min=1)
    return scaled(loss, target, weight, scale)


def draw_missing_condition(
    present: torch.Tensor, include_full: bool = False, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Kept cells [B, M] of a missing-condition input drawn from each sample (MMIN).

    A sample with k >= 2 present modalities keeps one of its 2^k - 2 non-empty proper
    subsets, drawn uniformly (2^k - 1 subsets, the full one too, with ``include_full``); a
    sample with one present modality is left as it is (there is nothing to drop).  MMIN
    enumerates every condition of every complete sample; drawing one condition per sample
    and step visits them all in expectation.
    """
    B, M = present.shape
    subsets = torch.tensor(
        list(itertools.product([False, True], repeat=M)), dtype=torch.bool, device=present.device
    )  # [2^M, M]
    inside = ~(subsets[None] & ~present[:, None]).any(-1)  # subset ⊆ present   [B, 2^M]
    nonempty = subsets.any(-1)[None]
    proper = (subsets[None] != present[:, None]).any(-1)
    valid = (inside & nonempty & (proper | include_full)).to(torch.float)
    droppable = valid.sum(-1) > 0
    weights = torch.where(droppable[:, None], valid, torch.ones_like(valid))
    choice = torch.multinomial(weights, 1, generator=generator).squeeze(1)
    return torch.where(droppable[:, None], subsets[choice], present)


class AutoEncoder(nn.Module):
    """``latent = enc(x)``, ``x̂ = dec(latent)``: Linear+ReLU layers of widths ``hidden``
    (the last is the latent), and the mirror image back to ``out_dim`` (a linear output)."""

    def __init__(self, in_dim: int, hidden: Sequence[int], out_dim: int | None = None):
        super().__init__()
        hidden = [int(h) for h in hidden]
        if not hidden:
            raise ValueError("an autoencoder needs at least one hidden width")
        out_dim = in_dim if out_dim is None else out_dim
        enc, dims = [], [in_dim, *hidden]
        for a, b in itertools.pairwise(dims):
            enc += [nn.Linear(a, b), nn.ReLU()]
        dec, back = [], [*hidden[::-1], out_dim]
        for i, (a, b) in enumerate(itertools.pairwise(back)):
            dec.append(nn.Linear(a, b))
            if i < len(back) - 2:
                dec.append(nn.ReLU())
        self.encoder, self.decoder = nn.Sequential(*enc), nn.Sequential(*dec)
        self.latent_dim = hidden[-1]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        latent = self.encoder(x)
        return self.decoder(latent), latent


class ResidualCascade(nn.Module):
    """CRA (Tran et al. 2017): K residual autoencoders,
    ``x̂_k = x̂_{k-1} + f_k([x̂_{k-1} ∥ c])`` from ``x̂_0 = x``; ``cond_dim > 0`` feeds a
    conditioning vector ``c`` to every block (IF-MMIN's IF-IM, Zuo et al. 2023).
    Returns ``x̂_K`` and the blocks' latents concatenated (MMIN's joint representation)."""

    def __init__(self, dim: int, hidden: Sequence[int], blocks: int, cond_dim: int = 0):
        super().__init__()
        if int(blocks) < 1:
            raise ValueError(f"a residual cascade needs at least one block, got {blocks}")
        self.cond_dim = int(cond_dim)
        self.blocks = nn.ModuleList(
            AutoEncoder(dim + self.cond_dim, hidden, out_dim=dim) for _ in range(int(blocks))
        )
        self.latent_dim = sum(b.latent_dim for b in self.blocks)

    def forward(
        self, x: torch.Tensor, cond: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if (cond is None) != (self.cond_dim == 0):
            raise ValueError(
                f"this cascade was built with cond_dim={self.cond_dim}; "
                f"got {'no' if cond is None else 'a'} conditioning vector"
            )
        out, latents = x, []
        for block in self.blocks:
            delta, latent = block(out if cond is None else torch.cat([out, cond], dim=1))
            out = out + delta
            latents.append(latent)
        return out, torch.cat(latents, dim=1)


def cmd(x: torch.Tensor, y: torch.Tensor, moments: int) -> torch.Tensor:
    """Central moment discrepancy CMD_K (Zellinger et al. 2017) between samples
    ``x`` [N, d] and ``y`` [N', d], for features in an interval of length 1 (as IF-MMIN's
    and MISA's code, which drop the 1/|b-a|^k factors):
    ``||E x - E y||₂ + Σ_{k=2..K} ||c_k(x) - c_k(y)||₂``, ``c_k(x) = E (x - E x)^k``."""
    if int(moments) < 1:
        raise ValueError(f"cmd needs at least one moment, got {moments}")
    mx, my = x.mean(0), y.mean(0)
    total = torch.linalg.vector_norm(mx - my)
    cx, cy = x - mx, y - my
    for k in range(2, int(moments) + 1):
        total = total + torch.linalg.vector_norm((cx**k).mean(0) - (cy**k).mean(0))
    return total


def pairwise_cmd(
    invariant: Sequence[torch.Tensor], present: torch.Tensor, moments: int
) -> torch.Tensor:
    """IF-MMIN's L_cmd: the mean of :func:`cmd` over modality pairs (i < j), each
    over the samples where both are present; pairs with fewer than two such samples are left
    out (zero, still depending on the features, when none is left)."""
    terms = []
    for i, j in itertools.combinations(range(len(invariant)), 2):
        both = present[:, i] & present[:, j]
        if int(both.sum()) >= 2:
            terms.append(cmd(invariant[i][both], invariant[j][both], moments))
    if not terms:
        return invariant[0].sum() * 0.0
    return torch.stack(terms).mean()


def masked_mean(vectors: Sequence[torch.Tensor], keep: torch.Tensor) -> torch.Tensor:
    """Per-sample mean of the kept modalities' vectors (each [B, d]); zero where none."""
    stacked = torch.stack(list(vectors), dim=1)  # [B, M, d]
    w = keep.to(stacked.dtype).unsqueeze(-1)
    return (stacked * w).sum(1) / w.sum(1).clamp(min=1)
