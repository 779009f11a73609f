"""Head gradient modification as a training hook (Algorithm 1, steps "compute P_t" and
"update φ with P_t").

After modality m's loss is back-propagated, h̄ (:class:`FeatureMean`, from the detached
features of m over the samples where m is present, summed over all ranks under
torch.distributed, so P stays identical everywhere) updates P (Eq. 3), and the head's
gradient is replaced by its projection (Eq. 4).  The very first modality step of training
is a plain step, as in the paper (t = 0) and the code (``exp_count == 0``).

h̄ (``hgm_mean``): Eq. 3 writes h̄ = 1/N_m Σ h over modality m's data; the code uses the
mini-batch mean (``batch``); ``running`` is a bias-corrected exponential mean over m's
modality steps (decay ``hgm_mean_decay``); ``epoch`` is m's mean feature over the whole
*previous* epoch (accumulated during epoch e, used throughout e + 1; epoch 1, having no
previous epoch, uses the batch mean).  ``hgm_reset: epoch`` puts P back to P_0 = I at the
start of every epoch after the first.
"""

import torch
from torch import nn

from mla_plugin.core.distributed import all_reduce_sum
from mla_plugin.core.hooks import Step, TrainingHook, register_hook
from mla_plugin.core.projector import (
    OrthogonalProjector,
    alpha_schedule,
    augment,
    project_head_gradient,
)

HGM_MODES = ("off", "owm", "code_literal")
HGM_MEANS = ("batch", "running", "epoch")
HGM_RESETS = ("never", "epoch")


class FeatureMean:
    """The h̄ fed to Eq. 3, per modality, from each step's (global) feature sum and count.

    ``batch``: total / count.  ``running``: e ← d·e + (1 − d)·(total / count) per modality,
    returned bias-corrected as e / (1 − d^n) after n steps (so the first step gives the batch
    mean).  ``epoch``: sums and counts accumulate over epoch e; from epoch e + 1 on, the mean
    of epoch e is returned (the batch mean while no previous epoch exists, i.e. in epoch 1).
    The state is plain tensors and numbers, saved with the hook (resume is exact).
    """

    def __init__(self, mode: str, decay: float):
        if mode not in HGM_MEANS:
            raise ValueError(f"hgm_mean: {mode!r} is not one of {list(HGM_MEANS)}")
        if not 0.0 <= float(decay) < 1.0:
            raise ValueError(f"hgm_mean_decay must be in [0, 1), got {decay!r}")
        self.mode, self.decay = mode, float(decay)
        self.epoch = 0  # the epoch the accumulators belong to
        self.ema: dict[str, torch.Tensor] = {}
        self.steps: dict[str, int] = {}
        self.acc: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.previous: dict[str, torch.Tensor] = {}

    def start_epoch(self, epoch: int) -> None:
        """Close the accumulators of the finished epoch (``epoch`` mode); idempotent for a
        resumed epoch (same ``epoch`` again)."""
        if epoch == self.epoch:
            return
        if self.mode == "epoch":
            self.previous = {m: t / c for m, (t, c) in self.acc.items() if c > 0}
            self.acc = {}
        self.epoch = epoch

    def __call__(self, modality: str, total: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
        batch = total / count.clamp(min=1)
        if self.mode == "batch":
            return batch
        if self.mode == "running":
            d = self.decay
            e = self.ema.get(modality)
            self.ema[modality] = batch.clone() * (1 - d) if e is None else d * e + (1 - d) * batch
            self.steps[modality] = self.steps.get(modality, 0) + 1
            return self.ema[modality] / (1 - d ** self.steps[modality])
        t, c = self.acc.get(modality, (torch.zeros_like(total), torch.zeros_like(count)))
        self.acc[modality] = (t + total, c + count)
        return self.previous.get(modality, batch)

    def state_dict(self) -> dict:
        clone = lambda d: {m: v.clone() for m, v in d.items()}  # noqa: E731
        return {
            "epoch": self.epoch,
            "ema": clone(self.ema),
            "steps": dict(self.steps),
            "acc": {m: (t.clone(), c.clone()) for m, (t, c) in self.acc.items()},
            "previous": clone(self.previous),
        }

    def load_state_dict(self, state: dict) -> None:
        self.epoch = int(state["epoch"])
        self.ema = {m: v.clone() for m, v in state["ema"].items()}
        self.steps = {m: int(n) for m, n in state["steps"].items()}
        self.acc = {m: (t.clone(), c.clone()) for m, (t, c) in state["acc"].items()}
        self.previous = {m: v.clone() for m, v in state["previous"].items()}


@register_hook("hgm", model_hook=True)
class HeadGradientModification(TrainingHook):
    """Args:
        head: the shared ``nn.Linear`` head g.
        mode: ``owm`` (paper) or ``code_literal`` (the released code's formula, for study).
        alpha: ``"schedule"`` (the code's 0.1^(1+b/N_b), restarting each epoch) or a number.
        p_frob_norm: renormalise P by its Frobenius norm after each update (code only).
        project_bias: project the bias too, as a weight on a constant input 1.
        project_full_update: project the whole head update (momentum and weight decay
            included) instead of the raw gradient; when false only the gradient is
            projected and SGD adds momentum and decay unprojected, as in the code.
        mean: ``batch`` | ``running`` | ``epoch``, the h̄ of Eq. 3 (:class:`FeatureMean`).
        mean_decay: the decay of the ``running`` mean.
        reset: ``never`` | ``epoch`` (P back to I at each epoch start after the first).

    All required keywords, no defaults here: MLA's are ``hgm``, ``hgm_alpha`` /
    ``hgm_alpha_const``, ``p_frob_norm``, ``project_bias``, ``project_full_update``,
    ``hgm_mean``, ``hgm_mean_decay`` and ``hgm_reset`` in ``mla_plugin/configs/models/mla.yaml``.

    :meth:`summary` gives ``{"trace_p": [trace(P)/s at the end of each epoch]}``.
    """

    def __init__(
        self,
        head: nn.Linear,
        *,
        mode: str,
        alpha: str | float,
        p_frob_norm: bool,
        project_bias: bool,
        project_full_update: bool,
        mean: str,
        mean_decay: float,
        reset: str,
    ):
        if reset not in HGM_RESETS:
            raise ValueError(f"hgm_reset: {reset!r} is not one of {list(HGM_RESETS)}")
        if mode not in HGM_MODES[1:]:
            raise ValueError(f"hgm: unknown mode {mode!r}; valid: {list(HGM_MODES)}")
        if alpha != "schedule" and not isinstance(alpha, (int, float)):
            raise ValueError(f"hgm_alpha must be 'schedule' or a number, got {alpha!r}")
        self.head = head
        self.alpha = alpha
        self.project_bias = project_bias
        self.project_full_update = project_full_update
        dim = head.in_features + (1 if project_bias else 0)
        self.projector = OrthogonalProjector(
            dim, mode=mode, p_frob_norm=p_frob_norm, device=head.weight.device
        )
        self.mean = FeatureMean(mean, mean_decay)
        self.reset = reset
        self.modality_steps = 0
        self.trace: dict[int, torch.Tensor] = {}  # epoch -> trace(P)/s after its last update
        self._before: torch.Tensor | None = None

    def on_train_epoch_start(self, epoch: int, num_batches: int) -> None:
        if epoch == self.mean.epoch:  # a resumed epoch: already started
            return
        self.mean.start_epoch(epoch)
        if self.reset == "epoch" and epoch > 1:
            self.projector.reset()

    def _alpha(self, step: Step) -> float:
        if self.alpha == "schedule":
            return alpha_schedule(step.batch_index, step.num_batches)
        return float(self.alpha)

    @torch.no_grad()
    def on_before_optimizer_step(self, step: Step) -> None:
        # a step the fp16 GradScaler skips (inf/nan gradients) changes nothing: neither
        # the weights nor P, nor the count that makes the first modality step plain
        if step.modality is None or step.skipped:
            return
        first = self.modality_steps == 0
        self.modality_steps += 1
        if first:
            return
        # summed in P's dtype (float32), whatever the features' (bf16/fp16 under autocast)
        feats = step.features[step.modality].detach().to(self.projector.P.dtype)
        if step.mask is not None:
            present = step.mask[:, step.modality_index].to(feats.dtype)
            total, count = (feats * present[:, None]).sum(0), present.sum()
        else:
            total, count = feats.sum(0), feats.new_tensor(float(feats.shape[0]))
        packed = all_reduce_sum(torch.cat([total.reshape(-1), count.reshape(1)]))
        h_mean = self.mean(step.modality, packed[:-1], packed[-1])
        if self.project_bias:
            h_mean = augment(h_mean)
        self.projector.update(h_mean, self._alpha(step))
        self.trace[step.epoch] = self.projector.normalized_trace()
        if self.project_full_update:
            self._before = self._head_params()
        else:
            project_head_gradient(self.head, self.projector, project_bias=self.project_bias)

    @torch.no_grad()
    def on_after_optimizer_step(self, step: Step) -> None:
        if self._before is None:
            return
        delta = self._head_params() - self._before
        projected = self._before + self.projector.project(delta)
        self.head.weight.copy_(projected[:, : self.head.in_features])
        if self.project_bias:
            self.head.bias.copy_(projected[:, -1])
        self._before = None

    def _head_params(self) -> torch.Tensor:
        if self.project_bias:
            return torch.cat([self.head.weight, self.head.bias[:, None]], dim=1).clone()
        return self.head.weight.clone()

    def summary(self) -> dict:
        """``{"trace_p": [...]}``: trace(P)/s after each epoch's last update, epochs in order."""
        return {"trace_p": [float(self.trace[e]) for e in sorted(self.trace)]}

    def state_dict(self):
        return {
            "projector": self.projector.state_dict(),
            "modality_steps": self.modality_steps,
            "mean": self.mean.state_dict(),
            "trace": {e: t.clone() for e, t in self.trace.items()},
        }

    def load_state_dict(self, state):
        self.projector.load_state_dict(state["projector"])
        self.modality_steps = int(state["modality_steps"])
        self.mean.load_state_dict(state["mean"])
        self.trace = {int(e): t.clone() for e, t in state["trace"].items()}
