"""AUG -- sustained boosting with adaptive classifier assignment (Jiang, Huang, Yang,
NeurIPS 2025, "Rethinking Multimodal Learning from the Perspective of Mitigating
Classification Ability Disproportion").

Per modality m, learners ``e_m^j = ReLU(A_m^j h_m)`` share one classifier W; the
modality's logits are ``F_m = Σ_{j<=J_m} W e_m^j``.  With ``O_m`` the ensemble before the
newest learner and ``N_m`` the newest learner's logits, the loss of modality m is
(sustained boosting)::

    J_m = 0:  CE(F_m)
    J_m > 0:  CE(F_m) + CE(O_m) + CE(N_m) - r · CE_soft(N_m, y ⊙ softmax(O_m).detach())

which for a one-hot y is ``CE(F) + CE(O) + (1 - r·p_O[y]) · (-log softmax(N)[y])``:
:func:`boosting_loss`.  Every ``interval`` epochs (the first at epoch 0's end) the
training-epoch confidence ratio ``ρ = Σ p_a[y] / Σ p_v[y]`` assigns a new learner to the
weaker side (:func:`assign_learner`).  Inference: ``μ·F_a + (1-μ)·F_v``
(:func:`merge_logits`).  Two modalities: the paper's ratio is defined for a pair.
"""

import math

import torch
import torch.nn.functional as F

from .distributed import all_reduce_sum
from .hooks import Step, TrainingHook, register_hook
from .ogm_ge import discrepancy_scores


def boosting_loss(
    ensemble: torch.Tensor,
    previous: torch.Tensor | None,
    newest: torch.Tensor | None,
    targets: torch.Tensor,
    *,
    residual_weight: float,
    present: torch.Tensor | None = None,
) -> torch.Tensor:
    """The sustained-boosting loss of one modality, averaged over the present samples
    (``previous``/``newest`` None: the modality has no added learner, plain CE)."""
    loss = F.cross_entropy(ensemble, targets, reduction="none")
    if previous is not None:
        p_prev = torch.softmax(previous.detach().float(), 1).gather(1, targets[:, None])[:, 0]
        newest_ce = F.cross_entropy(newest, targets, reduction="none")
        loss = loss + F.cross_entropy(previous, targets, reduction="none")
        loss = loss + (1.0 - residual_weight * p_prev.to(newest_ce.dtype)) * newest_ce
    if present is None:
        return loss.mean()
    weight = present.to(loss.dtype)
    return (loss * weight).sum() / weight.sum().clamp(min=1)


def assign_learner(scores: dict[str, float], *, balance: float, margin: float) -> str | None:
    """The modality that gets a new learner: the second if ``ρ = s_1/s_2 > λ + margin``,
    the first if ``ρ < λ - margin``, else None (``scores``: two modalities, in order)."""
    (first, s1), (second, s2) = scores.items()
    if s2 <= 0:
        return second if s1 > 0 else None
    ratio = s1 / s2
    if ratio > balance + margin:
        return second
    if ratio < balance - margin:
        return first
    return None


def merge_logits(
    logits: dict[str, torch.Tensor], merge: float, present: torch.Tensor | None = None
) -> torch.Tensor:
    """``μ·F_1 + (1-μ)·F_2``; a sample missing a modality uses the other's logits alone
    (its weight renormalised to 1)."""
    (a, za), (b, zb) = logits.items()
    w = torch.tensor([merge, 1.0 - merge], dtype=za.dtype, device=za.device).expand(len(za), 2)
    if present is not None:
        w = w * present.to(za.dtype)
        w = w / w.sum(1, keepdim=True).clamp(min=1e-12)
    return w[:, :1] * za + w[:, 1:] * zb


@register_hook("aug_assignment", model_hook=True)
class AdaptiveAssignment(TrainingHook):
    """Adaptive classifier assignment: sums each modality's training confidence
    ``Σ p_m[y]`` over the epoch's steps (the samples that have m), and after epoch
    ``e`` (0-based) with ``e % interval == 0`` gives the weaker side a learner through
    ``add_learner(m) -> bool`` (False: the model has no free learner left).

    ``interval`` None: ``max(1, round(E / 10))``, the paper's E/10, with E the run's
    ``max_epochs`` (or, for a run that stops by updates, the epochs those updates take).
    ``frozen`` (a callable returning parameters): their gradients are dropped before each
    step -- the official code's added learners, never given to its optimizer."""

    def __init__(self, add_learner, modalities, *, balance, margin, interval, frozen=None):
        self.add_learner, self.modalities = add_learner, list(modalities)
        self.balance, self.margin, self.interval = balance, margin, interval
        self.frozen = frozen
        self.sums = {m: 0.0 for m in self.modalities}
        self.history: list[dict] = []
        self.device = torch.device("cpu")

    def setup(self, ctx) -> None:
        self.device = ctx.device
        if self.interval is None:  # E/10, E the run's length in epochs
            epochs = ctx.max_epochs
            if epochs == math.inf:  # stopped by updates: one step per modality and batch
                epochs = math.ceil(ctx.max_updates / (ctx.num_batches * len(self.modalities)))
            self.interval = max(1, round(epochs / 10))

    def on_before_optimizer_step(self, step: Step) -> None:
        for p in self.frozen() if self.frozen else ():
            p.grad = None

    def on_after_optimizer_step(self, step: Step) -> None:
        if step.modality is None:
            return
        scores = discrepancy_scores(
            {step.modality: step.outputs["modality_scores"][step.modality]},
            step.batch["targets"],
            None
            if step.mask is None
            else step.mask[:, step.modality_index : step.modality_index + 1],
        )
        self.sums[step.modality] += float(scores[step.modality])

    def on_train_epoch_end(self, epoch: int) -> None:
        local = torch.tensor([self.sums[m] for m in self.modalities], dtype=torch.float64)
        sums = all_reduce_sum(local.to(self.device)).cpu()  # NCCL reduces on the GPU
        totals = dict(zip(self.modalities, sums.tolist(), strict=True))
        self.sums = {m: 0.0 for m in self.modalities}
        if (epoch - 1) % self.interval:
            return
        chosen = assign_learner(totals, balance=self.balance, margin=self.margin)
        added = bool(chosen) and bool(self.add_learner(chosen))
        self.history.append({"epoch": epoch, "scores": totals, "modality": chosen, "added": added})

    def summary(self) -> dict:
        return {"assignments": [dict(h) for h in self.history]} if self.history else {}

    def state_dict(self) -> dict:
        return {"sums": dict(self.sums), "history": [dict(h) for h in self.history]}

    def load_state_dict(self, state: dict) -> None:
        self.sums = {m: float(v) for m, v in state["sums"].items()}
        self.history = [dict(h) for h in state["history"]]
