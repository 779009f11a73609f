"""AGM -- Adaptive Gradient Modulation (Li et al., ICCV 2023), written from the paper's
mono-modal responses (Sec. 3.2), its modulation coefficient (Sec. 3.3) and
docs/baselines-notes.md "AGM":

1. mono-modal response of m: the Shapley value of m over coalitions of modalities, where a
   modality outside the coalition is zero-padded (its encoder sees zeros),
   ``φ_m = Σ_{S ⊆ N∖{m}} |S|!(M−|S|−1)!/M! · [f(S ∪ {m}) − f(S)]``; the empty coalition's
   output f(∅) is taken as 0 (``empty_coalition="zero"``, the paper's two-modality
   formula) or its term is dropped (``"exclude"``, BalanceBenchmark);
2. mono score ``s_m = mean_i −log softmax(φ_m,i)[y_i]`` (a cross-entropy, clamped at
   −log 1e-8), over the samples where m is present;
3. running average over steps ``t_m ← t_m·(n−1)/n + s_m/n``;
4. ``r_m = exp(σ·M/(M−1)·(s̄ − s_m))``, ``r̄_m`` the same of the running averages, and
   ``k_m = exp(α·min(r̄_m − r_m, cap))``; σ = +1 is the authors' code (a modality stronger
   than its own history is slowed), σ = −1 BalanceBenchmark's flipped sign;
5. every gradient of encoder m is multiplied by k_m before the optimizer step.

The switches are required keyword arguments; their defaults are in
``mla_plugin/configs/models/agm.yaml``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch

from .distributed import all_reduce_sum, world_size
from .hooks import Step, TrainingHook, register_hook

SIGNS = {"official": 1.0, "balancebenchmark": -1.0}
EMPTY_COALITION = ("zero", "exclude")
LOG_FLOOR = math.log(1e-8)


def coalitions(modalities: Sequence[str]) -> list[frozenset]:
    """Every non-empty subset of ``modalities`` (the forwards AGM needs: 2^M − 1)."""
    mods = list(modalities)
    return [frozenset(c) for r in range(1, len(mods) + 1) for c in itertools.combinations(mods, r)]


def shapley_responses(
    outputs: dict[frozenset, torch.Tensor], modalities: Sequence[str], *, empty_coalition: str
) -> dict[str, torch.Tensor]:
    """φ_m from the outputs f(S) of every non-empty coalition S (step 1)."""
    if empty_coalition not in EMPTY_COALITION:
        raise ValueError(
            f"empty_coalition must be one of {EMPTY_COALITION}, got {empty_coalition!r}"
        )
    mods = list(modalities)
    M = len(mods)
    full = outputs[frozenset(mods)]
    responses = {}
    for m in mods:
        others = [n for n in mods if n != m]
        phi = torch.zeros_like(full)
        for r in range(0, M):
            weight = math.factorial(r) * math.factorial(M - r - 1) / math.factorial(M)
            for c in itertools.combinations(others, r):
                S = frozenset(c)
                if not S and empty_coalition == "exclude":
                    continue
                without = outputs[S] if S else torch.zeros_like(full)
                phi = phi + weight * (outputs[S | {m}] - without)
        responses[m] = phi
    return responses


def mono_scores(
    responses: dict[str, torch.Tensor],
    targets: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """s_m (step 2), detached, averaged over the samples of every rank (DDP) where m is
    present; a modality present in no sample is left out."""
    scores = {}
    for j, (m, phi) in enumerate(responses.items()):
        logp = torch.log_softmax(phi.detach().float(), dim=1).gather(1, targets.view(-1, 1))
        ce = -logp.squeeze(1).clamp(min=LOG_FLOOR)
        keep = torch.ones_like(ce) if mask is None else mask[:, j].to(ce.dtype)
        count = keep.sum()
        total = (ce * keep).sum()
        if world_size() > 1 or count > 0:
            packed = torch.stack([total, count])
            if world_size() > 1:
                packed = all_reduce_sum(packed)
            if packed[1] > 0:
                scores[m] = packed[0] / packed[1]
    return scores


def agm_coefficients(
    scores: dict[str, float], running: dict[str, float], *, alpha: float, cap: float, sign: str
) -> dict[str, float]:
    """k_m (step 4) from the current scores s_m and their running averages t_m."""
    if sign not in SIGNS:
        raise ValueError(f"sign must be one of {list(SIGNS)}, got {sign!r}")
    mods = list(scores)
    M = len(mods)
    scale = SIGNS[sign] * M / (M - 1)
    s_bar = sum(scores.values()) / M
    t_bar = sum(running[m] for m in mods) / M
    coeffs = {}
    for m in mods:
        r = math.exp(scale * (s_bar - scores[m]))
        r_bar = math.exp(scale * (t_bar - running[m]))
        coeffs[m] = math.exp(alpha * min(r_bar - r, cap))
    return coeffs


@register_hook("agm", model_hook=True)
class AGMHook(TrainingHook):
    """Steps 3-5 between backward and the optimizer step.  The model puts the batch's mono
    scores in ``step.outputs["agm_scores"]``.  A step where some modality has no score (no
    sample has it) keeps every k = 1 and leaves the running averages as they are.
    ``clip``: BalanceBenchmark's extra rule (None = off): when a head gradient's largest
    magnitude exceeds ``clip``, the whole model's gradient norm is clipped to ``clip``.
    The running averages and their count are the hook's state (saved in checkpoints)."""

    def __init__(
        self,
        encoders: dict[str, torch.nn.Module],
        head: torch.nn.Module,
        *,
        alpha: float,
        cap: float,
        sign: str,
        clip: float | None,
    ):
        if sign not in SIGNS:
            raise ValueError(
                f"model_config.agm.agm_sign must be one of {list(SIGNS)}, got {sign!r}"
            )
        self.encoders, self.head = encoders, head
        self.alpha, self.cap, self.sign, self.clip = alpha, cap, sign, clip
        self.running: dict[str, float] = {}
        self.count = 0
        self.last_coefficients: dict[str, float] = {}

    def update_running(self, scores: dict[str, float]) -> None:
        """Step 3: the running average, counted in steps (its first value is s itself)."""
        self.count += 1
        n = self.count
        for m, s in scores.items():
            self.running[m] = self.running.get(m, 0.0) * (n - 1) / n + s / n

    def on_before_optimizer_step(self, step: Step) -> None:
        scores = {m: float(s) for m, s in step.outputs["agm_scores"].items()}
        self.last_coefficients = {}
        if set(scores) != set(self.encoders):
            return
        self.update_running(scores)
        coeffs = agm_coefficients(
            scores, self.running, alpha=self.alpha, cap=self.cap, sign=self.sign
        )
        self.last_coefficients = coeffs
        for m, encoder in self.encoders.items():
            for p in encoder.parameters():
                if p.grad is not None:
                    p.grad.mul_(coeffs[m])
        if self.clip is not None:
            head_max = max(
                (float(p.grad.abs().max()) for p in self.head.parameters() if p.grad is not None),
                default=0.0,
            )
            if head_max > self.clip:
                torch.nn.utils.clip_grad_norm_(step.model.parameters(), self.clip)

    def summary(self) -> dict:
        return {"running_score": dict(self.running)} if self.running else {}

    def state_dict(self) -> dict:
        return {"running": dict(self.running), "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.running = {m: float(v) for m, v in state["running"].items()}
        self.count = int(state["count"])
