"""MLA: alternating unimodal adaptation with a shared head, head gradient modification
and test-time dynamic fusion (paper Sec. 2, Algorithm 1).

The pieces live in the framework-free core: the schedule in
:mod:`mla_plugin.core.schedule`, the projector in :mod:`mla_plugin.core.projector`
(applied by :class:`~mla_plugin.core.hgm.HeadGradientModification` after backward), and
the fusion rule in :mod:`mla_plugin.core.fusion`, called through MMF's fusion registry
(:mod:`mla_plugin.models.fusions`: ``fusion``/``fusion_entropy`` name a registered rule).
"""

from mmf.common.registry import registry
from torch import nn

from mla_plugin.core import fusion
from mla_plugin.core.hgm import HGM_MEANS, HGM_MODES, HGM_RESETS, HeadGradientModification
from mla_plugin.core.hooks import Step
from mla_plugin.core.losses import masked_cross_entropy
from mla_plugin.core.schedule import SCHEDULES, modalities_for_iteration
from mla_plugin.models.base import MultimodalModel
from mla_plugin.models.fusions import build_fusion, mla_fusion_name, registered_rules


@registry.register_model("mla")
class MLA(MultimodalModel):
    NAME = "mla"
    ONE_STEP_PER_BATCH = False  # one step per modality after one forward: no DDP

    def build_head(self):
        cfg = self.config
        for key, value, valid in (
            ("schedule", cfg.schedule, SCHEDULES),
            ("hgm", cfg.hgm, HGM_MODES),
            ("hgm_alpha", cfg.hgm_alpha, ("schedule", "const")),
            ("hgm_mean", cfg.hgm_mean, HGM_MEANS),
            ("hgm_reset", cfg.hgm_reset, HGM_RESETS),
            ("fusion", cfg.fusion, (*fusion.RULES, *registered_rules())),
            ("fusion_entropy", cfg.fusion_entropy, fusion.ENTROPY_MODES),
        ):
            if value not in valid:  # before training; the hook checks its own arguments too
                raise ValueError(f"model_config.mla.{key}: {value!r} is not one of {list(valid)}")
        self.head = nn.Linear(self.feature_dim, self.num_classes)  # the shared head g
        nn.init.xavier_normal_(self.head.weight)  # the authors' weight_init
        nn.init.zeros_(self.head.bias)
        fixed = cfg.fixed_weights
        if fixed and len(fixed) != len(self.modalities):  # else it fails at the first eval
            raise ValueError(
                f"model_config.mla.fixed_weights: {len(fixed)} weights {list(fixed)} for "
                f"{len(self.modalities)} modalities {self.modalities}; give one weight per "
                "modality, in that order, or null for the code's defaults"
            )
        self.fixed_weights = (
            list(fixed) if fixed else fusion.CODE_FIXED_WEIGHTS.get(len(self.modalities))
        )
        # the test-time rule, an MMF fusion looked up by name (no parameters, no state)
        self.fusion_name = mla_fusion_name(cfg.fusion, cfg.fusion_entropy)
        params = {}
        if self.fusion_name == "mla_fixed":
            params = {"weights": self.fixed_weights, "num_modalities": len(self.modalities)}
        try:
            self.fusion_rule = build_fusion(self.fusion_name, **params)
        except (TypeError, ValueError) as e:
            raise ValueError(f"model_config.mla.fusion: {cfg.fusion!r}: {e}") from None
        # the switch read on every batch, read once (an OmegaConf lookup costs ~15 us)
        self._schedule = cfg.schedule
        self._idle_momentum = bool(cfg.idle_encoder_momentum_step)

    def forward(self, sample_list):
        """Unimodal predictions f_m = g(h_m(x_m)) fused by the configured rule (Eq. 5-7)."""
        features = self.encode(sample_list)
        unimodal = {m: self.head(features[m]) for m in self.modalities}
        fused, _ = self.fusion_rule(unimodal, self.presence(sample_list))
        return {"scores": fused, "modality_scores": unimodal, "features": features}

    def training_steps(self, sample_list, iteration):
        """One step per scheduled modality: its own CE (Eq. 2) through its encoder and g.

        The encoders run once per batch; each modality's logits are computed just before
        its step, so g's earlier steps in the batch are seen (as in the code).  With
        ``missing_fill: skip`` a modality's loss covers only the samples that have it,
        and a modality absent from the whole batch takes no step.
        """
        order = modalities_for_iteration(self._schedule, self.modalities, iteration)
        features = self.encode(sample_list, order)
        mask = self.presence(sample_list)
        for m in order:
            i = self.modalities.index(m)
            present = None if mask is None else mask[:, i]
            if present is not None and not bool(present.any()):
                continue
            logits = self.head(features[m])
            loss = masked_cross_entropy(logits, sample_list.targets, present)
            yield Step(
                loss=loss,
                modality=m,
                modality_index=i,
                features=features,
                outputs={"modality_scores": {m: logits}},
            )

    def training_hooks(self):
        cfg = self.config
        if cfg.hgm == "off":
            return []
        return [
            HeadGradientModification(
                self.head,
                mode=cfg.hgm,
                alpha=cfg.hgm_alpha_const if cfg.hgm_alpha == "const" else "schedule",
                p_frob_norm=cfg.p_frob_norm,
                project_bias=cfg.project_bias,
                project_full_update=cfg.project_full_update,
                mean=cfg.hgm_mean,
                mean_decay=cfg.hgm_mean_decay,
                reset=cfg.hgm_reset,
            )
        ]

    def zero_grad_between_steps(self):
        return self._idle_momentum
