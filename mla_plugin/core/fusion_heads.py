"""Fusion heads of the baselines (MLA paper appendix A.2; ``docs/baselines-notes.md`` §1,
``docs/method-notes.md`` §8).

Every head takes ``features``: modality -> [B, s] (same s; modalities in the fixed order given at
construction) and an optional presence mask Bool [B, M] (columns in that order), and returns
``(fused_logits [B, C], unimodal_logits: modality -> [B, C])``.

Conventions for unimodal logits and absent modalities are stated per head.  Heads whose fused
path cannot leave a modality out (Concat, FiLM, BiGated) zero-fill its features.
"""

from collections.abc import Sequence

import torch
from torch import nn

from .qmf import energy_confidence, qmf_fuse

Features = dict[str, torch.Tensor]
Output = tuple[torch.Tensor, dict[str, torch.Tensor]]


def _zero_fill(modalities, features: Features, mask: torch.Tensor | None) -> Features:
    if mask is None:
        return {m: features[m] for m in modalities}
    return {
        m: features[m] * mask[:, j : j + 1].to(features[m].dtype) for j, m in enumerate(modalities)
    }


class _PerModalityHeads(nn.Module):
    def __init__(self, modalities: Sequence[str], dim: int, num_classes: int):
        super().__init__()
        self.modalities = list(modalities)
        self.heads = nn.ModuleDict({m: nn.Linear(dim, num_classes) for m in self.modalities})

    def unimodal(self, features: Features) -> dict[str, torch.Tensor]:
        return {m: self.heads[m](features[m]) for m in self.modalities}

    def _present(self, mask, ref: torch.Tensor) -> torch.Tensor:
        if mask is None:
            return torch.ones(
                ref.shape[0], len(self.modalities), dtype=ref.dtype, device=ref.device
            )
        return mask.to(ref.dtype)


class ConcatHead(nn.Module):
    """One Linear(M·s -> C) on ``cat(h_1, ..., h_M)``.

    Unimodal logits (OGM-GE / MLA-code convention): ``W[:, block m] · h_m + b / M``, so they
    sum to the fused logits.  Concatenation cannot leave a modality out: absent modalities
    are zero-filled.
    """

    def __init__(self, modalities: Sequence[str], dim: int, num_classes: int):
        super().__init__()
        self.modalities, self.dim = list(modalities), dim
        self.fc = nn.Linear(len(self.modalities) * dim, num_classes)

    def forward(self, features: Features, mask: torch.Tensor | None = None) -> Output:
        h = _zero_fill(self.modalities, features, mask)
        fused = self.fc(torch.cat([h[m] for m in self.modalities], dim=1))
        M, s = len(self.modalities), self.dim
        uni = {
            m: h[m] @ self.fc.weight[:, j * s : (j + 1) * s].t() + self.fc.bias / M
            for j, m in enumerate(self.modalities)
        }
        return fused, uni


class SumHead(_PerModalityHeads):
    """One Linear(s -> C) per modality; fused = sum of the present modalities' logits.

    Unimodal logits: ``unimodal_bias="full"`` = each head's own output, full bias (the
    code's training logs); ``"div_m"`` = ``W_m h_m + b_m / M`` (the code's unimodal eval,
    bias/2 for M = 2).  Absent modalities are left out of the sum.  The default is the sum
    model's, ``unimodal_bias`` in ``mla_plugin/configs/models/sum.yaml``.
    """

    def __init__(
        self, modalities: Sequence[str], dim: int, num_classes: int, *, unimodal_bias: str
    ):
        super().__init__(modalities, dim, num_classes)
        if unimodal_bias not in ("full", "div_m"):
            raise ValueError(f"unimodal_bias must be 'full' or 'div_m', got {unimodal_bias!r}")
        self.unimodal_bias = unimodal_bias

    def forward(self, features: Features, mask: torch.Tensor | None = None) -> Output:
        uni = self.unimodal(features)
        present = self._present(mask, uni[self.modalities[0]])
        fused = sum(present[:, j : j + 1] * uni[m] for j, m in enumerate(self.modalities))
        if self.unimodal_bias == "div_m":
            M = len(self.modalities)
            uni = {m: u - self.heads[m].bias * (1 - 1 / M) for m, u in uni.items()}
        return fused, uni


class LateFusionHead(_PerModalityHeads):
    """One Linear(s -> C) per modality; fused = mean of the present modalities' logits.

    Unimodal logits = each head's output.  Training uses only Σ_m CE(unimodal_m) (each
    encoder+head trained on its own loss, A.2); the fused output is for evaluation.
    """

    def forward(self, features: Features, mask: torch.Tensor | None = None) -> Output:
        uni = self.unimodal(features)
        present = self._present(mask, uni[self.modalities[0]])
        total = sum(present[:, j : j + 1] * uni[m] for j, m in enumerate(self.modalities))
        fused = total / present.sum(dim=1, keepdim=True).clamp(min=1)
        return fused, uni


class QMFHead(_PerModalityHeads):
    """Late-fusion heads fused by QMF: ``Σ_m w_m f_m``, w_m = logsumexp(f_m)/T, detached when
    ``detach`` (see :mod:`.qmf`); absent modalities are left out.  The last weights are kept in
    ``self.last_weights``; ``confidences(unimodal_logits)`` recomputes them (with gradient).
    Defaults: ``qmf_temperature`` and ``qmf_detach`` in ``mla_plugin/configs/models/qmf.yaml``.
    ``fuse``: the rule called as ``fuse(unimodal, mask) -> (fused, weights [B, M])`` (the QMF
    model passes MMF's registered ``qmf_energy``, ``mla_plugin/models/fusions.py``); None
    calls :func:`~mla_plugin.core.qmf.qmf_fuse` directly (same numbers).
    """

    def __init__(
        self,
        modalities: Sequence[str],
        dim: int,
        num_classes: int,
        *,
        temperature: float,
        detach: bool,
        fuse: nn.Module | None = None,
    ):
        super().__init__(modalities, dim, num_classes)
        self.temperature, self.detach = temperature, detach
        self.fuse = fuse
        self.last_weights: dict[str, torch.Tensor] = {}

    def confidences(self, unimodal_logits: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {
            m: energy_confidence(f, temperature=self.temperature)
            for m, f in unimodal_logits.items()
        }

    def forward(self, features: Features, mask: torch.Tensor | None = None) -> Output:
        uni = self.unimodal(features)
        if self.fuse is None:
            fused, self.last_weights = qmf_fuse(
                uni, mask, temperature=self.temperature, detach=self.detach
            )
        else:
            fused, weights = self.fuse(uni, mask)
            self.last_weights = {m: weights[:, j] for j, m in enumerate(self.modalities)}
        return fused, uni


class _ConditionedHead(nn.Module):
    """Shared skeleton of FiLM and BiGated: one conditioning modality c acts on the others.

    ``extension`` (only matters for M >= 3; M = 2 gives the same result either way):
    ``"chain"`` -- c acts once on the mean of the other modalities' (hidden) features;
    ``"pairwise_sum"`` -- c acts on each other modality separately, the results are summed.
    Absent modalities are zero-filled.  Unimodal logits of modality m: the fused path with
    every other modality's features zeroed (the classifier needs the conditioning input, so
    "head applied to m alone" is not defined).  The conditioning modality and ``extension``
    have no default here: FiLM's are in ``mla_plugin/configs/models/film.yaml``, BiGated's
    in ``bigated.yaml`` (``first``, ``chain``).
    """

    def __init__(self, modalities: Sequence[str], conditioning: str, extension: str):
        super().__init__()
        self.modalities = list(modalities)
        if len(self.modalities) < 2:
            raise ValueError("a conditioned fusion needs at least two modalities")
        self.cond = self.modalities[0] if conditioning == "first" else conditioning
        if self.cond not in self.modalities:
            raise ValueError(f"unknown conditioning modality {conditioning!r}")
        if extension not in ("chain", "pairwise_sum"):
            raise ValueError(f"extension must be 'chain' or 'pairwise_sum', got {extension!r}")
        self.extension = extension
        self.others = [m for m in self.modalities if m != self.cond]

    def _fuse(self, h: Features) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, features: Features, mask: torch.Tensor | None = None) -> Output:
        h = _zero_fill(self.modalities, features, mask)
        fused = self._fuse(h)
        uni = {
            m: self._fuse({n: (h[n] if n == m else torch.zeros_like(h[n])) for n in h})
            for m in self.modalities
        }
        return fused, uni

    def _combine(self, act, others):
        """``act(x)`` applies the conditioning to one tensor; combine per ``extension``."""
        if self.extension == "chain":
            return act(torch.stack(others).mean(0))
        return sum(act(x) for x in others)


class FiLMHead(_ConditionedHead):
    """FiLM (Perez et al. 2018; A.2): ``[γ, β] = Linear(s -> 2s)(h_c)``,
    ``z = γ ⊙ h_o + β``, logits = Linear(s -> C)(z).  M >= 3 per ``extension`` (in
    ``"pairwise_sum"`` β is added once per other modality)."""

    def __init__(
        self,
        modalities: Sequence[str],
        dim: int,
        num_classes: int,
        *,
        conditioning: str,
        extension: str,
    ):
        super().__init__(modalities, conditioning, extension)
        self.film = nn.Linear(dim, 2 * dim)
        self.fc_out = nn.Linear(dim, num_classes)

    def _fuse(self, h: Features) -> torch.Tensor:
        gamma, beta = self.film(h[self.cond]).chunk(2, dim=1)
        return self.fc_out(self._combine(lambda x: gamma * x + beta, [h[m] for m in self.others]))


class BiGatedHead(_ConditionedHead):
    """Gated fusion (A.2): ``u_m = Linear_m(s -> s)(h_m)`` per modality,
    ``z = sigmoid(u_g) ⊙ u_o``, logits = Linear(s -> C)(z).  M >= 3 per ``extension``
    (``"chain"`` gates the mean of the others' hidden states).  A zero-filled modality's
    hidden state is its Linear's bias."""

    def __init__(
        self, modalities: Sequence[str], dim: int, num_classes: int, *, gate: str, extension: str
    ):
        super().__init__(modalities, gate, extension)
        self.hidden = nn.ModuleDict({m: nn.Linear(dim, dim) for m in self.modalities})
        self.fc_out = nn.Linear(dim, num_classes)

    def _fuse(self, h: Features) -> torch.Tensor:
        gate = torch.sigmoid(self.hidden[self.cond](h[self.cond]))
        others = [self.hidden[m](h[m]) for m in self.others]
        return self.fc_out(self._combine(lambda u: gate * u, others))
