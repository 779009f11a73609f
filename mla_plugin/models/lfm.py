"""LFM (Yang et al., NeurIPS 2024) on top of Concat: the fused CE and a cross-modal
alignment loss mixed by a weight α (:mod:`mla_plugin.core.lfm`), α learned once per
epoch from a held-out batch of the **val** split (``heldout_loader``; never test) or
following the authors' fitted schedule.

Switches (``configs/models/lfm.yaml``): ``lfm_alignment`` (``infonce`` | ``js`` |
``bb_js``), ``lfm_tau``, ``lfm_weighting`` (``learned`` | ``fitted``), ``lfm_alpha_init``,
``lfm_alpha_low`` / ``lfm_alpha_high``, ``lfm_lr_alpha``, ``lfm_lr_halve_every``,
``lfm_heldout_samples``, ``lfm_loss_scale`` (BalanceBenchmark: 2).  Missing modalities:
the CE is Concat's, each alignment pair uses the samples that have both modalities.
"""

import torch
from mmf.common.registry import registry

from mla_plugin.core.hooks import Step, TrainingHook, register_hook
from mla_plugin.core.lfm import (
    ALIGNMENTS,
    INNER_DATA,
    WEIGHTINGS,
    alignment_loss,
    batch_gradients,
    fitted_alpha,
    hypergradient_step,
    lfm_loss,
)
from mla_plugin.core.losses import masked_cross_entropy
from mla_plugin.data.heldout import heldout_loader
from mla_plugin.models.concat import Concat


@register_hook("lfm", model_hook=True)
class LFMHook(TrainingHook):
    """Sets the model's alignment weight α at each epoch start (1-based ``epoch``).

    ``learned``: one hypergradient step, the outer gradient on the first ``samples``
    samples of the held-out (val) split, the inner ones on the first ``samples`` of the
    train split (``inner_data: train``) or on the same held-out batch (``heldout``,
    BalanceBenchmark); both batches are read once and kept, and an epoch already updated
    (a resumed run) is not updated again.  ``heldout_batch`` / ``train_batch``: callables
    giving them, set by ``setup(ctx)``.  ``summary()``: α per epoch.
    """

    def __init__(
        self, model, *, weighting, alpha_init, low, high, lr, halve_every, samples, inner_data
    ):
        if weighting not in WEIGHTINGS:
            raise ValueError(f"lfm_weighting must be one of {list(WEIGHTINGS)}, got {weighting!r}")
        if inner_data not in INNER_DATA:
            raise ValueError(
                f"lfm_inner_data must be one of {list(INNER_DATA)}, got {inner_data!r}"
            )
        self.model, self.weighting, self.inner_data = model, weighting, inner_data
        self.alpha, self.low, self.high = alpha_init, low, high
        self.lr, self.halve_every, self.samples = lr, halve_every, samples
        self.heldout_batch = self.train_batch = None
        self._batches = None
        self.updated_epoch = 0
        self.alphas: dict[int, float] = {}

    def setup(self, ctx) -> None:
        def heldout():
            return ctx.to_device(next(iter(heldout_loader(ctx, batch_size=self.samples))))

        def train():
            data = ctx.datasets["train"]
            sampler = torch.utils.data.SequentialSampler(data)
            return ctx.to_device(next(iter(ctx.loader(data, sampler, batch_size=self.samples))))

        if self.weighting == "learned":
            self.heldout_batch = heldout
            self.train_batch = train

    def on_train_epoch_start(self, epoch: int, num_batches: int) -> None:
        if self.weighting == "fitted":
            self.alpha = fitted_alpha(epoch - 1)
        elif self.updated_epoch != epoch:
            self._learn(epoch)
            self.updated_epoch = epoch
        self.alphas[epoch] = self.alpha
        self.model.lfm_alpha = self.alpha

    def _learn(self, epoch: int) -> None:
        if self.heldout_batch is None:
            raise RuntimeError("lfm: learning alpha needs the held-out data; setup(ctx) not run")
        if self._batches is None:
            heldout = self.heldout_batch()
            same = self.inner_data == "heldout"
            self._batches = (heldout, heldout if same else self.train_batch())
        heldout, inner = self._batches
        model = self.model
        params = [p for p in model.parameters() if p.requires_grad]
        g_outer, g_align = batch_gradients(model, heldout, model.alignment, model.tau, params)
        if inner is not heldout:
            g_ce, g_align = batch_gradients(model, inner, model.alignment, model.tau, params)
        else:
            g_ce = g_outer
        lr = self.lr * 0.5 ** ((epoch - 1) // self.halve_every)
        self.alpha = hypergradient_step(self.alpha, g_outer, g_ce, g_align, lr, self.low, self.high)

    def summary(self) -> dict:
        return {"alpha": [self.alphas[e] for e in sorted(self.alphas)]}

    def state_dict(self) -> dict:
        return {"alpha": self.alpha, "updated_epoch": self.updated_epoch, "alphas": self.alphas}

    def load_state_dict(self, state: dict) -> None:
        self.alpha = float(state["alpha"])
        self.updated_epoch = int(state["updated_epoch"])
        self.alphas = {int(e): float(a) for e, a in state["alphas"].items()}
        self.model.lfm_alpha = self.alpha


@registry.register_model("lfm")
class LFM(Concat):
    NAME = "lfm"

    def build_head(self):
        super().build_head()
        cfg = self.config
        self.alignment, self.tau = cfg.lfm_alignment, float(cfg.lfm_tau)
        if self.alignment not in ALIGNMENTS:
            raise ValueError(
                f"model_config.lfm.lfm_alignment must be one of {list(ALIGNMENTS)}, "
                f"got {self.alignment!r}"
            )
        if cfg.lfm_weighting not in WEIGHTINGS:
            raise ValueError(
                f"model_config.lfm.lfm_weighting must be one of {list(WEIGHTINGS)}, "
                f"got {cfg.lfm_weighting!r}"
            )
        if not 0 <= float(cfg.lfm_alpha_low) <= float(cfg.lfm_alpha_high) <= 1:
            raise ValueError(
                "model_config.lfm: need 0 <= lfm_alpha_low <= lfm_alpha_high <= 1, got "
                f"{cfg.lfm_alpha_low} and {cfg.lfm_alpha_high}"
            )
        self.lfm_alpha = float(cfg.lfm_alpha_init)

    def training_steps(self, sample_list, iteration: int):
        out = self(sample_list)
        ce = masked_cross_entropy(out["scores"], sample_list.targets)
        align = alignment_loss(
            self.alignment, out["features"], out["modality_scores"], out["present"], self.tau
        )
        loss = lfm_loss(ce, align, self.lfm_alpha, float(self.config.lfm_loss_scale))
        yield Step(loss=loss, modality=None, features=out["features"], outputs=out)

    def training_hooks(self):
        cfg = self.config
        return [
            LFMHook(
                self,
                weighting=cfg.lfm_weighting,
                alpha_init=float(cfg.lfm_alpha_init),
                low=float(cfg.lfm_alpha_low),
                high=float(cfg.lfm_alpha_high),
                lr=float(cfg.lfm_lr_alpha),
                halve_every=int(cfg.lfm_lr_halve_every),
                samples=cfg.lfm_heldout_samples,
                inner_data=cfg.lfm_inner_data,
            )
        ]
