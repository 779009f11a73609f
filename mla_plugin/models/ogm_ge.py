"""OGM-GE (Peng et al., CVPR 2022) on top of Concat: the fused CE's gradients of the
dominant modality's encoder are scaled by k = 1 - tanh(α·ρ) and, with GE, perturbed by
Gaussian noise of the gradient's own std, between ``loss.backward()`` and
``optimizer.step()`` -- through the loop's ``on_before_optimizer_step`` hook point
(:class:`~mla_plugin.core.ogm_ge.OGMGEHook`), like MLA's HGM.

ρ comes from the fused head's slices (``W[:, block m] · h_m + b / M``, the same logits
that give the per-modality accuracy).  Switches (``configs/models/ogm_ge.yaml``):
``ogm_alpha``, ``ogm_start_epoch`` / ``ogm_end_epoch`` (0-based, inclusive),
``ogm_params`` (``all`` | ``conv_only``), ``ogm_ge``, ``ogm_ge_scope``, ``ogm_extension``
(M >= 3), ``ogm_seed``.  Missing modalities: features zero-filled as in Concat, and the
discrepancy score of a modality sums only over the samples that have it.

The hook here also keeps a per-epoch record of the coefficients (mean k, how often each
modality was suppressed); it is part of the hook's state, so checkpoints carry it.
"""

import torch
from mmf.common.registry import registry

from mla_plugin.core.ogm_ge import OGMGEHook
from mla_plugin.models.concat import Concat


class RecordingOGMGEHook(OGMGEHook):
    """:class:`OGMGEHook` plus ``coefficient_log``: one entry per epoch with modulation,
    ``{"epoch": e (1-based), "steps": n, "mean_k": {m: ...}, "suppressed": {m: count}}``."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.coefficient_log = []

    def on_before_optimizer_step(self, step) -> None:
        super().on_before_optimizer_step(step)
        if not self.last_coefficients:
            return
        if not self.coefficient_log or self.coefficient_log[-1]["epoch"] != step.epoch:
            self.coefficient_log.append(
                {
                    "epoch": step.epoch,
                    "steps": 0,
                    "sum_k": {m: 0.0 for m in self.last_coefficients},
                    "suppressed": {m: 0 for m in self.last_coefficients},
                }
            )
        entry = self.coefficient_log[-1]
        entry["steps"] += 1
        for m, k in self.last_coefficients.items():
            entry["sum_k"][m] += k
            entry["suppressed"][m] += int(k < 1.0)

    def summary(self):
        return [
            {
                "epoch": e["epoch"],
                "steps": e["steps"],
                "suppressed": dict(e["suppressed"]),
                "mean_k": {m: s / max(e["steps"], 1) for m, s in e["sum_k"].items()},
            }
            for e in self.coefficient_log
        ]

    def state_dict(self) -> dict:
        state = super().state_dict()
        state["coefficient_log"] = [dict(e) for e in self.coefficient_log]
        state["coefficient_summary"] = self.summary()
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.coefficient_log = [dict(e) for e in state.get("coefficient_log", [])]


@registry.register_model("ogm_ge")
class OGMGE(Concat):
    NAME = "ogm_ge"

    HOOK = RecordingOGMGEHook

    def ge_switches(self) -> dict:
        """The GE keys of the hook: ``ogm_ge``, ``ogm_ge_scope`` and the noise seed."""
        cfg = self.config
        seed = cfg.ogm_seed
        if seed is None:  # the training seed: the trainer seeds torch before building hooks
            seed = torch.initial_seed()
        return {"ge": bool(cfg.ogm_ge), "seed": int(seed), "ge_scope": cfg.ogm_ge_scope}

    def training_hooks(self):
        cfg = self.config
        return [
            self.HOOK(
                self.encoders,
                alpha=float(cfg.ogm_alpha),
                start_epoch=int(cfg.ogm_start_epoch),
                end_epoch=int(cfg.ogm_end_epoch),
                params=cfg.ogm_params,
                extension=cfg.ogm_extension,
                **self.ge_switches(),
            )
        ]
