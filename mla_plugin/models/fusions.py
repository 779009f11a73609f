"""The test-time fusion rules as MMF fusions (``@registry.register_fusion``).

The math is framework-free in :mod:`mla_plugin.core.fusion` (MLA's rules) and
:mod:`mla_plugin.core.qmf` (QMF's energy weighting); this module only wraps each rule in
an ``nn.Module`` (rc10's ``register_fusion`` accepts nothing else) and registers it under
a name that does not collide with MMF's own fusions (``block``, ``block_tucker``,
``mutan``, ``tucker``, ``mlb``, ``mfb``, ``mfh``, ``mcb``, ``linear_sum``,
``concat_mlp`` in ``mmf/modules/fusions.py``): every name starts with ``mla_`` or
``qmf_``.

Every rule is called as ``rule(unimodal, present)`` with ``unimodal`` modality -> logits
[B, C] in the model's modality order and ``present`` Bool [B, M] (or None), and returns
``(fused [B, C], weights [B, M])``.  A model looks its rule up by name with
:func:`build_fusion`; MLA maps its user-facing switches (``fusion``, ``fusion_entropy``,
``fixed_weights`` in ``configs/models/mla.yaml``) to a name with :func:`mla_fusion_name`,
and also accepts the name of any registered :class:`FusionRule` without parameters.
"""

from collections.abc import Sequence

import torch
from mmf.common.registry import registry
from torch import nn

from mla_plugin.core import fusion
from mla_plugin.core.qmf import qmf_fuse

MAPPING = "fusion_name_mapping"  # rc10 has register_fusion but no get_fusion_class
PREFIXES = ("mla_", "qmf_")

# MLA's user-facing switches -> registered rule
MLA_RULES = {
    ("entropy", "per_sample"): "mla_entropy",
    ("entropy", "code_batch_dim0"): "mla_entropy_code_batch_dim0",
    ("fixed", None): "mla_fixed",
    ("mean", None): "mla_mean",
}


def register_fusion(name: str):
    """``registry.register_fusion(name)``, refusing a name without our prefix or one
    already taken by another class (so nothing of MMF's is shadowed)."""

    def wrap(cls):
        if not name.startswith(PREFIXES):
            raise ValueError(f"plugin fusion {name!r} must start with one of {PREFIXES}")
        taken = registry.mapping[MAPPING].get(name)
        if taken is not None and taken.__qualname__ != cls.__qualname__:
            raise ValueError(f"fusion name {name!r} is already registered by {taken!r}")
        return registry.register_fusion(name)(cls)

    return wrap


def registered_rules() -> list[str]:
    """The registered fusions that fuse unimodal logits (:class:`FusionRule`), sorted;
    MMF's own fusions combine feature vectors and are left out."""
    return sorted(
        n
        for n, cls in registry.mapping[MAPPING].items()
        if isinstance(cls, type) and issubclass(cls, FusionRule)
    )


def build_fusion(name: str, **params) -> "FusionRule":
    """The registered fusion ``name`` built with ``params``; an unknown name, or a
    registered fusion that is not a :class:`FusionRule` (MMF's own fuse features, not
    logits), is an error listing the usable ones."""
    cls = registry.mapping[MAPPING].get(name)
    if cls is None or not issubclass(cls, FusionRule):
        why = "is not registered" if cls is None else "fuses features, not unimodal logits"
        raise ValueError(
            f"fusion {name!r} {why}; registered fusion rules: {', '.join(registered_rules())}"
        )
    return cls(**params)


def mla_fusion_name(rule: str, entropy_mode: str) -> str:
    """The registered rule for MLA's ``fusion`` / ``fusion_entropy``; a ``fusion`` that is
    itself a registered rule's name is returned as it is."""
    key = (rule, entropy_mode if rule == "entropy" else None)
    if key in MLA_RULES:
        return MLA_RULES[key]
    return rule


class FusionRule(nn.Module):
    """Base of the plugin's registered fusion rules (no parameters, no buffers: a model
    holding one has the same ``state_dict`` as before)."""

    def weights(self, logits: torch.Tensor, present: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def forward(
        self, unimodal: dict[str, torch.Tensor], present: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        logits = torch.stack(list(unimodal.values()))  # [M, B, C]
        weights = self.weights(logits, present)
        return fusion.fuse_logits(logits, weights), weights


@register_fusion("mla_entropy")
class EntropyFusion(FusionRule):
    """Paper Eq. 5-7: per-sample weights softmax(−entropy) over the present modalities."""

    def weights(self, logits, present):
        return fusion.entropy_weights(logits, present)


@register_fusion("mla_entropy_code_batch_dim0")
class CodeBatchEntropyFusion(FusionRule):
    """The released code's entropy fusion: softmax over the batch axis, one weight per
    modality per batch (:func:`mla_plugin.core.fusion.code_batch_dim0_weights`)."""

    def weights(self, logits, present):
        return fusion.code_batch_dim0_weights(logits, present)


@register_fusion("mla_mean")
class MeanFusion(FusionRule):
    """Equal weights over the present modalities."""

    def weights(self, logits, present):
        return fusion.mean_weights(logits.shape[0], present, logits.shape[1], logits.device)


@register_fusion("mla_fixed")
class FixedFusion(FusionRule):
    """Constant weights, renormalised over the present modalities; ``weights=None`` means
    the released code's :data:`~mla_plugin.core.fusion.CODE_FIXED_WEIGHTS` for
    ``num_modalities``."""

    def __init__(self, *, weights: Sequence[float] | None, num_modalities: int):
        super().__init__()
        if weights is None:
            if num_modalities not in fusion.CODE_FIXED_WEIGHTS:
                raise ValueError(
                    f"no default fixed fusion weights for {num_modalities} modalities "
                    f"(the code has them for {sorted(fusion.CODE_FIXED_WEIGHTS)}); "
                    "set fixed_weights"
                )
            weights = fusion.CODE_FIXED_WEIGHTS[num_modalities]
        if len(weights) != num_modalities:
            raise ValueError(f"{len(weights)} fixed fusion weights for {num_modalities} modalities")
        self.fixed = [float(w) for w in weights]

    def weights(self, logits, present):
        return fusion.fixed_weights(self.fixed, present, logits.shape[1], logits.device)


@register_fusion("qmf_energy")
class EnergyFusion(FusionRule):
    """QMF: ``Σ_m w_m f_m`` with w_m = logsumexp(f_m) / T, detached when ``detach``, absent
    modalities left out (:func:`mla_plugin.core.qmf.qmf_fuse`).  The weights are not
    normalised (QMF's rule)."""

    def __init__(self, *, temperature: float, detach: bool):
        super().__init__()
        self.temperature, self.detach = float(temperature), bool(detach)

    def forward(self, unimodal, present=None):
        fused, weights = qmf_fuse(
            unimodal, present, temperature=self.temperature, detach=self.detach
        )
        return fused, torch.stack(list(weights.values()), dim=1)
