"""MMPareto (Wei and Hu, ICML 2024): the multimodal and the unimodal gradient of each
encoder combined by the Pareto rule when they conflict, then rescaled.

For encoder m, with g_mm = ∇_θm L_mm (the fused CE) and g_u = ∇_θm L_m (its unimodal
head's CE), both flattened over the whole encoder:

1. cos(g_mm, g_u) > 0: (κ1, κ2) = (1/2, 1/2) (no conflict, the plain average);
2. otherwise the two-task min-norm (MGDA) weights, the paper's Eq. 5-6:
   κ1 = clip((g_u·g_u - g_mm·g_u) / ‖g_mm - g_u‖², 0.001, 0.999), κ2 = 1 - κ1;
3. per parameter tensor: g̃ = 2(κ1 g_mm + κ2 g_u); if the plain summed gradient
   g_sum = g_mm + g_u is longer, g̃ is stretched to its norm (the magnitude rule, Eq. 8);
   the result is multiplied by γ.

The heads keep the plain gradient of L_mm + Σ_m L_m.  Since no unimodal loss but L_m
reaches encoder m, the loop's one backward of that sum already holds g_sum on every
encoder; the hook here needs g_mm on top (one extra backward in the model's step), and
g_u = g_sum - g_mm.  ``zero_grads=False`` reproduces BalanceBenchmark, which never zeroes
the gradients between its backward passes, so both recorded gradients are g_sum: no
conflict is ever seen and the step is 2γ·g_sum.
"""

import torch

from .distributed import world_size
from .hooks import Step, TrainingHook, register_hook

MULTIMODAL_GRADS = "mmpareto_multimodal_grads"  # step.outputs key: {m: [g_mm per param]}


def pareto_weights(g_mm: torch.Tensor, g_u: torch.Tensor) -> tuple[float, float, bool]:
    """(κ1, κ2, conflict) for two flat gradients (:func:`pareto_weights_from_dots`)."""
    return pareto_weights_from_dots(float(g_mm @ g_mm), float(g_u @ g_u), float(g_mm @ g_u))


def pareto_weights_from_dots(mm: float, uu: float, mu: float) -> tuple[float, float, bool]:
    """(κ1, κ2, conflict) from ‖g_mm‖², ‖g_u‖² and g_mm·g_u, with
    ‖g_mm - g_u‖² = mm + uu - 2 mu.  A zero gradient has no direction to conflict with:
    it counts as no conflict (the plain average)."""
    if mm == 0 or uu == 0 or mu > 0:
        return 0.5, 0.5, False
    k1 = min(max((uu - mu) / (mm + uu - 2 * mu), 0.001), 0.999)
    return k1, 1.0 - k1, True


def combine(
    g_mm: torch.Tensor, g_u: torch.Tensor, g_sum: torch.Tensor, k1: float, k2: float, gamma: float
) -> torch.Tensor:
    """γ·g̃ for one parameter tensor: g̃ = 2(κ1 g_mm + κ2 g_u), stretched to ‖g_sum‖ when
    that is larger (one new tensor; the inputs are left alone)."""
    g = g_mm.mul(2.0 * k1).add_(g_u, alpha=2.0 * k2)
    norm, target = float(g.norm()), float(g_sum.norm())
    scale = target / norm if target > norm else 1.0
    return g.mul_(gamma * scale)


@register_hook("mmpareto", model_hook=True)
class MMParetoHook(TrainingHook):
    """Replace each encoder's gradient (the loop's g_sum) by the combined one.

    ``encoders``: modality -> module, in the model's order; the model's step puts g_mm
    under ``step.outputs[MULTIMODAL_GRADS]`` (one tensor or None per parameter of
    ``encoders[m].parameters()``), unless ``zero_grads`` is False.  ``last_weights`` holds
    the step's (κ1, κ2) per modality; ``conflicts`` counts, per 1-based epoch and
    modality, the steps where the Pareto weights were used (saved with the hook state).
    """

    def __init__(self, encoders: dict[str, torch.nn.Module], *, gamma: float, zero_grads: bool):
        self.encoders, self.gamma, self.zero_grads = encoders, gamma, zero_grads
        self.last_weights: dict[str, tuple[float, float]] = {}
        self.conflicts: dict[int, dict[str, int]] = {}
        self.steps: dict[int, int] = {}

    def setup(self, ctx) -> None:
        if getattr(ctx, "precision", "fp32") == "fp16":
            raise ValueError(
                "model mmpareto: training.precision=fp16 is not supported (its extra "
                "backward of the fused loss is not loss-scaled); use fp32 or bf16"
            )

    @torch.no_grad()
    def on_before_optimizer_step(self, step: Step) -> None:
        if step.skipped:
            return
        stored = step.outputs.get(MULTIMODAL_GRADS) if self.zero_grads else None
        if self.zero_grads and stored is None:
            raise RuntimeError("mmpareto: the model's step did not record g_mm")
        counts = self.conflicts.setdefault(step.epoch, {m: 0 for m in self.encoders})
        self.steps[step.epoch] = self.steps.get(step.epoch, 0) + 1
        self.last_weights = {}
        for m, encoder in self.encoders.items():
            params = list(encoder.parameters())
            # (param, g_mm, g_u) for the parameters with a gradient; BalanceBenchmark's
            # recorded gradients (zero_grads False) are both the accumulated g_sum
            triples = []
            for i, p in enumerate(params):
                if p.grad is None:
                    continue
                if stored is None:
                    triples.append((p, p.grad, p.grad))
                    continue
                g_mm = stored[m][i]
                triples.append((p, torch.zeros_like(p.grad) if g_mm is None else g_mm, None))
            if not triples:
                continue
            if stored is not None and world_size() > 1:
                _average([g for _, g, _ in triples])
            triples = [(p, g, p.grad - g if u is None else u) for p, g, u in triples]
            dots = torch.zeros(3, dtype=torch.float64, device=triples[0][1].device)
            for _, g_mm, g_u in triples:
                a, b = g_mm.reshape(-1).float(), g_u.reshape(-1).float()
                dots += torch.stack([a @ a, b @ b, a @ b]).double()
            k1, k2, conflict = pareto_weights_from_dots(*dots.tolist())
            self.last_weights[m] = (k1, k2)
            counts[m] += int(conflict)
            for p, g_mm, g_u in triples:
                p.grad = combine(g_mm, g_u, p.grad, k1, k2, self.gamma).to(p.grad.dtype)

    def summary(self) -> dict:
        epochs = sorted(self.steps)
        return {
            "conflict_rate": {
                m: [self.conflicts[e][m] / self.steps[e] for e in epochs] for m in self.encoders
            }
        }

    def state_dict(self) -> dict:
        return {
            "conflicts": {e: dict(c) for e, c in self.conflicts.items()},
            "steps": dict(self.steps),
        }

    def load_state_dict(self, state: dict) -> None:
        self.conflicts = {int(e): dict(c) for e, c in state.get("conflicts", {}).items()}
        self.steps = {int(e): int(n) for e, n in state.get("steps", {}).items()}


def _average(tensors: list[torch.Tensor]) -> None:
    """Average g_mm over DDP ranks in place (the loop averages the .grad it holds)."""
    import torch.distributed as dist

    flat = torch.cat([t.reshape(-1) for t in tensors]) / world_size()
    dist.all_reduce(flat)
    offset = 0
    for t in tensors:
        t.copy_(flat[offset : offset + t.numel()].view_as(t))
        offset += t.numel()
