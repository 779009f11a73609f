"""InfoReg (Huang, Wei, Yang and Hu, CVPR 2025): slow down the information-sufficient
modality during the prime learning window by pulling its encoder back toward its
epoch-start weights.

Written from the official code's rule (the paper's equation numbers are not verified):

1. at each epoch start, θ̃_m ← θ_m for every encoder;
2. the information trace of modality m in epoch e: T_e^m = Σ over its weight tensors
   (dim > 1) of the tensor mean of Σ_steps g², g the gradient applied at the step (the
   diagonal Fisher information it acquired);
3. the prime-window indicator of m, from its traces padded with ``window`` zeros:
   k = (mean(last ``window``) - mean(the ``window`` before the latest)) / mean(last
   ``window``), 1 before any epoch; the window is open while k > ``threshold``;
4. each step, the modality with the largest score s_m = Σ_i p_m,i[y_i] (the batch sum of
   the true-class probability) is the information-sufficient one; with gap = s_m minus
   the mean score of the others (s_a - s_v for two), if gap > 0 and its window is open,
   g_θm += β_m (θ_m - θ̃_m) with β_m = base_m · exp(tanh(gap)).

The official code reads only the audio trace (step 3) and gives audio and video fixed
different bases (0.95 and 0.1): here each modality has its own trace and one base unless
``bases`` / ``window_modality`` say otherwise.
"""

import math

import torch

from .distributed import all_reduce_sum
from .hooks import Step, TrainingHook, register_hook
from .ogm_ge import discrepancy_scores


def prime_window_indicator(traces: list[float], window: int) -> float:
    """k of step 3 for the traces of the epochs so far (1.0 when there are none)."""
    if not traces:
        return 1.0
    h = [0.0] * window + list(traces)
    recent = sum(h[-window:]) / window
    before = sum(h[-window - 1 : -1]) / window
    return (recent - before) / recent if recent > 0 else 0.0


def regulated_modality(
    scores: dict[str, float], bases: dict[str, float]
) -> tuple[str | None, float]:
    """(modality, β) of step 4 before the window check; (None, 0) when no modality's
    score exceeds the mean of the others'."""
    mods = list(scores)
    top = max(mods, key=lambda m: scores[m])
    others = [scores[n] for n in mods if n != top]
    gap = scores[top] - sum(others) / len(others)
    if gap <= 0:
        return None, 0.0
    return top, bases[top] * math.exp(math.tanh(gap))


@register_hook("inforeg", model_hook=True)
class InfoRegHook(TrainingHook):
    """Steps 1-4 between backward and the optimizer step.

    ``bases``: modality -> base coefficient; ``window_modality``: None (each modality's
    own trace opens its window) or a modality whose trace opens or closes it for all (the
    official code: audio).  The epoch-start snapshot, the traces and the epoch's running
    sum are the hook's state, so a run resumed mid-epoch regulates toward the same θ̃.
    ``summary()``: per epoch, k and the regulated-step count per modality, and the traces.
    """

    def __init__(
        self,
        encoders: dict[str, torch.nn.Module],
        *,
        bases: dict[str, float],
        window: int,
        threshold: float,
        window_modality: str | None,
    ):
        if window_modality is not None and window_modality not in encoders:
            raise ValueError(
                f"inforeg window_modality {window_modality!r} is not one of {list(encoders)}"
            )
        self.encoders, self.bases = encoders, bases
        self.window, self.threshold, self.window_modality = window, threshold, window_modality
        self.snapshot: dict[str, list[torch.Tensor]] = {}
        self.snapshot_epoch = 0
        self.traces: dict[str, list[float]] = {m: [] for m in encoders}
        self.running: dict[str, float] = {m: 0.0 for m in encoders}
        self.indicator: dict[str, float] = {}
        self.regulated: dict[int, dict[str, int]] = {}
        self.k_log: dict[int, dict[str, float]] = {}
        self.last: tuple[str | None, float] = (None, 0.0)

    def on_train_epoch_start(self, epoch: int, num_batches: int) -> None:
        if self.snapshot_epoch != epoch:  # not again for a run resumed mid-epoch
            self.snapshot = {
                m: [p.detach().clone() for p in e.parameters()] for m, e in self.encoders.items()
            }
            self.snapshot_epoch = epoch
            self.running = {m: 0.0 for m in self.encoders}
        self.indicator = {m: prime_window_indicator(t, self.window) for m, t in self.traces.items()}
        self.k_log[epoch] = dict(self.indicator)
        self.regulated.setdefault(epoch, {m: 0 for m in self.encoders})

    def window_open(self, m: str) -> bool:
        return self.indicator[self.window_modality or m] > self.threshold

    @torch.no_grad()
    def on_before_optimizer_step(self, step: Step) -> None:
        self.last = (None, 0.0)
        if step.skipped:
            return
        scores = discrepancy_scores(
            step.outputs["modality_scores"], step.batch["targets"], step.mask
        )
        summed = all_reduce_sum(torch.stack(list(scores.values())))  # every rank's batch
        scores = {m: float(s) for m, s in zip(scores, summed, strict=True)}
        m, beta = regulated_modality(scores, self.bases)
        if m is not None and self.window_open(m):
            self.last = (m, beta)
            self.regulated[step.epoch][m] += 1
            for p, anchor in zip(self.encoders[m].parameters(), self.snapshot[m], strict=True):
                if p.grad is not None:
                    p.grad.add_(p.detach() - anchor, alpha=beta)
        for name, encoder in self.encoders.items():
            self.running[name] += sum(
                float(p.grad.float().pow(2).mean())
                for p in encoder.parameters()
                if p.grad is not None and p.grad.dim() > 1
            )

    def on_train_epoch_end(self, epoch: int) -> None:
        for m in self.encoders:
            self.traces[m].append(self.running[m])
        self.running = {m: 0.0 for m in self.encoders}

    def summary(self) -> dict:
        epochs = sorted(self.k_log)
        return {
            "k": {m: [self.k_log[e][m] for e in epochs] for m in self.encoders},
            "regulated_steps": {m: [self.regulated[e][m] for e in epochs] for m in self.encoders},
            "trace": {m: list(t) for m, t in self.traces.items()},
        }

    def state_dict(self) -> dict:
        return {
            "snapshot": {m: [t.clone() for t in ts] for m, ts in self.snapshot.items()},
            "snapshot_epoch": self.snapshot_epoch,
            "traces": {m: list(t) for m, t in self.traces.items()},
            "running": dict(self.running),
            "regulated": {e: dict(c) for e, c in self.regulated.items()},
            "k_log": {e: dict(k) for e, k in self.k_log.items()},
        }

    def load_state_dict(self, state: dict) -> None:
        self.snapshot = {
            m: [t.to(p.device) for t, p in zip(ts, self.encoders[m].parameters(), strict=True)]
            for m, ts in state["snapshot"].items()
        }
        self.snapshot_epoch = int(state["snapshot_epoch"])
        self.traces = {m: [float(x) for x in t] for m, t in state["traces"].items()}
        self.running = {m: float(v) for m, v in state["running"].items()}
        self.regulated = {int(e): dict(c) for e, c in state["regulated"].items()}
        self.k_log = {int(e): dict(k) for e, k in state["k_log"].items()}
