"""AMCo -- Adaptive Mask Co-optimization (Zhou, Liang, Zheng, Xuan, Kumada, ICASSP 2023),
as BalanceBenchmark describes it (the original code was not available to us):

1. fused logits ``z = L*(Σ_m mask_m ⊙ z_m)``, with ``z_m = W_m h_m + b/M`` the slice
   logits of a concat head and ``L*`` an extra C×C linear layer;
2. a modality is *dependent* when its block of one softmax over the concatenated slice
   logits ``[z_1 | ... | z_M]`` (M·C entries) holds more than ``σ`` of the mass, averaged
   over the batch's samples that have it (measured after each step, used at the next);
3. within an epoch (0-based ``e``), a counter ``ℓ = b·e·growth`` at batch ``b``;
   ``p = sin(π/2 · min(ε, ℓ)/ε)`` and ``N = ⌊p·C⌋`` randomly drawn classes of the dependent
   modality's slice logits are zeroed, in the forward that feeds both losses;
4. loss ``CE(z) + Σ_m CE(z_m)`` (co-optimization with the unimodal losses).

The mask count :func:`mask_count`, the dependence :func:`dependent_modalities` and the
class mask :func:`class_mask` are pure; :class:`AMCoState` keeps the flags and the mask's
random generator between steps (a hook, so checkpoints carry both).
"""

import math

import torch

from .hooks import Step, TrainingHook, register_hook


def mask_count(batch_index: int, epoch0: int, num_classes: int, *, epsilon: float, growth: float):
    """``N = ⌊C · sin(π/2 · min(ε, ℓ)/ε)⌋`` with ``ℓ = batch_index · epoch0 · growth``.

    The floor has a 1e-9 tolerance, so a product that is whole in exact arithmetic
    (``6 · sin(π/6) = 3``) is not lost to rounding (BalanceBenchmark's card example)."""
    level = batch_index * epoch0 * growth
    p = math.sin(math.pi / 2 * min(epsilon, level) / epsilon)
    return int(math.floor(p * num_classes + 1e-9))


def block_mass(unimodal: dict[str, torch.Tensor]) -> torch.Tensor:
    """[B, M]: each modality's share of one softmax over the concatenated slice logits."""
    logits = torch.cat([z.detach().float() for z in unimodal.values()], dim=1)
    p = torch.softmax(logits, dim=1)
    return torch.stack([b.sum(1) for b in p.split([z.shape[1] for z in unimodal.values()], 1)], 1)


def dependent_modalities(
    unimodal: dict[str, torch.Tensor], sigma: float, present: torch.Tensor | None = None
) -> list[str]:
    """The modalities whose mean block mass (over the samples that have them) exceeds σ."""
    mass = block_mass(unimodal)
    out = []
    for j, m in enumerate(unimodal):
        rows = mass[:, j] if present is None else mass[present[:, j].bool(), j]
        if rows.numel() and float(rows.mean()) > sigma:
            out.append(m)
    return out


def class_mask(count: int, num_classes: int, generator: torch.Generator) -> torch.Tensor:
    """[C] float: ones, with ``count`` randomly drawn entries zeroed."""
    mask = torch.ones(num_classes)
    if count > 0:
        mask[torch.randperm(num_classes, generator=generator)[:count]] = 0.0
    return mask


@register_hook("amco", model_hook=True)
class AMCoState(TrainingHook):
    """The dependence flags and the mask generator between steps.

    ``masks(epoch0, batch_index, num_classes)`` gives the class mask of each dependent
    modality for the coming step; ``on_after_optimizer_step`` measures dependence on the
    step's slice logits as its forward gave them, masked (as BalanceBenchmark's forward):
    a fully masked modality is then not dependent at the next step, so the mask
    alternates."""

    def __init__(self, *, sigma: float, epsilon: float, growth: float, seed: int):
        self.sigma, self.epsilon, self.growth = sigma, epsilon, growth
        self.generator = torch.Generator().manual_seed(seed)
        self.dependent: list[str] = []
        self.masked_steps: dict[str, int] = {}
        self.ctx = None

    def setup(self, ctx) -> None:
        self.ctx = ctx  # the loop's counters: the epoch and the batch within it

    def current_masks(self, num_classes: int) -> dict[str, torch.Tensor]:
        """:meth:`masks` at the run's current epoch and batch (none outside a run)."""
        if self.ctx is None:
            return {}
        return self.masks(self.ctx.epoch, self.ctx.batch_in_epoch, num_classes)

    def masks(self, epoch0: int, batch_index: int, num_classes: int) -> dict[str, torch.Tensor]:
        count = mask_count(
            batch_index, epoch0, num_classes, epsilon=self.epsilon, growth=self.growth
        )
        if count == 0:
            return {}
        for m in self.dependent:
            self.masked_steps[m] = self.masked_steps.get(m, 0) + 1
        return {m: class_mask(count, num_classes, self.generator) for m in self.dependent}

    def on_after_optimizer_step(self, step: Step) -> None:
        self.dependent = dependent_modalities(
            step.outputs["modality_scores"], self.sigma, step.mask
        )

    def summary(self) -> dict:
        return {"masked_steps": dict(self.masked_steps)} if self.masked_steps else {}

    def state_dict(self) -> dict:
        return {
            "generator": self.generator.get_state(),
            "dependent": list(self.dependent),
            "masked_steps": dict(self.masked_steps),
        }

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.dependent = list(state["dependent"])
        self.masked_steps = dict(state["masked_steps"])
