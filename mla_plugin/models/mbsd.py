"""MBSD as BalanceBenchmark implements it, on top of Concat: the fused CE, each
modality's CE on its slice of the head (``W[:, block m]·h_m + b/M``, the logits behind the
per-modality accuracy) and the weighted pairwise self-distillation of
:mod:`mla_plugin.core.mbsd`; all loss weights 1, as there.

Switch (``configs/models/mbsd.yaml``): ``mbsd_kl_input`` (``probability``: as
BalanceBenchmark calls ``kl_div`` | ``log_probability``: a proper pointwise KL).  Any M
(every pair, averaged).  Missing modalities: each unimodal CE counts the samples that have
the modality, and a pair's term the samples that have both.
"""

from mmf.common.registry import registry

from mla_plugin.core.hooks import Step
from mla_plugin.core.losses import masked_cross_entropy
from mla_plugin.core.mbsd import KL_INPUTS, mbsd_distillation
from mla_plugin.models.concat import Concat


@registry.register_model("mbsd")
class MBSD(Concat):
    NAME = "mbsd"

    def build(self):
        super().build()
        if self.config.mbsd_kl_input not in KL_INPUTS:
            raise ValueError(
                f"model_config.mbsd.mbsd_kl_input must be one of {list(KL_INPUTS)}, "
                f"got {self.config.mbsd_kl_input!r}"
            )

    def training_steps(self, sample_list, iteration: int):
        out = self(sample_list)
        targets, mask = sample_list.targets, self.presence(sample_list)
        uni = out["modality_scores"]
        loss = masked_cross_entropy(out["scores"], targets)
        for j, m in enumerate(self.modalities):
            loss = loss + masked_cross_entropy(
                uni[m], targets, None if mask is None else mask[:, j]
            )
        loss = loss + mbsd_distillation(uni, targets, kl_input=self.config.mbsd_kl_input, mask=mask)
        yield Step(loss=loss, modality=None, features=out["features"], outputs=out)
