"""Head gradient modification as a training hook (Algorithm 1, steps "compute P_t" and
"update φ with P_t").

After modality m's loss is back-propagated, h̄ = the detached mean of m's features over
the samples where m is present (averaged over all ranks under torch.distributed, so P
stays identical everywhere) updates P (Eq. 3), and the head's gradient is replaced by
its projection (Eq. 4).  The very first modality step of training is a plain step, as in
the paper (t = 0) and the code (``exp_count == 0``).
"""

import torch
from torch import nn

from mla_plugin.core.distributed import weighted_mean
from mla_plugin.core.hooks import Step, TrainingHook
from mla_plugin.core.projector import (
    OrthogonalProjector,
    alpha_schedule,
    augment,
    project_head_gradient,
)

HGM_MODES = ("off", "owm", "code_literal")


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

    All required keywords, no defaults here: MLA's are ``hgm``, ``hgm_alpha`` /
    ``hgm_alpha_const``, ``p_frob_norm``, ``project_bias`` and ``project_full_update`` in
    ``mla_plugin/configs/models/mla.yaml``.
    """

    name = "hgm"

    def __init__(
        self,
        head: nn.Linear,
        *,
        mode: str,
        alpha: str | float,
        p_frob_norm: bool,
        project_bias: bool,
        project_full_update: bool,
    ):
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
        self.modality_steps = 0
        self._before: torch.Tensor | None = None

    def _alpha(self, step: Step) -> float:
        if self.alpha == "schedule":
            return alpha_schedule(step.batch_index, step.num_batches)
        return float(self.alpha)

    @torch.no_grad()
    def after_backward(self, step: Step) -> None:
        # a step the fp16 GradScaler skips (inf/nan gradients) changes nothing: neither
        # the weights nor P, nor the count that makes the first modality step plain
        if step.modality is None or step.skipped:
            return
        first = self.modality_steps == 0
        self.modality_steps += 1
        if first:
            return
        # in P's dtype: under autocast the features may be bf16/fp16
        feats = step.features[step.modality].detach().to(self.projector.P.dtype)
        if step.mask is not None:
            present = step.mask[:, step.modality_index].to(feats.dtype)
            total, count = (feats * present[:, None]).sum(0), present.sum()
        else:
            total, count = feats.sum(0), torch.tensor(float(feats.shape[0]))
        h_mean = weighted_mean(total.to(self.projector.P.dtype), count)
        if self.project_bias:
            h_mean = augment(h_mean)
        self.projector.update(h_mean, self._alpha(step))
        if self.project_full_update:
            self._before = self._head_params()
        else:
            project_head_gradient(self.head, self.projector, project_bias=self.project_bias)

    @torch.no_grad()
    def after_step(self, step: Step) -> None:
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

    def state_dict(self):
        return {"projector": self.projector.state_dict(), "modality_steps": self.modality_steps}

    def load_state_dict(self, state):
        self.projector.load_state_dict(state["projector"])
        self.modality_steps = int(state["modality_steps"])
