"""AGM (Li et al., ICCV 2023) on top of Concat: before each step, the fused head is run on
every coalition of modalities (those outside it zero-padded: their encoders see zeros),
without gradient and in eval mode; the Shapley mono-modal responses give each modality's
mono score; after the fused CE's backward, :class:`~mla_plugin.core.agm.AGMHook` scales
each encoder's gradients by its coefficient k_m.

The coalition outputs need each encoder once on the real input and once on zeros, and the
head 2^M − 1 times: the same numbers as 2^M − 1 padded full forwards, at 2M encoder passes.
Switches (``configs/models/agm.yaml``): ``agm_alpha``, ``agm_cap`` (null: the authors' 10
for two modalities, 7 for more), ``agm_sign``, ``agm_empty_coalition``, ``agm_clip``.
Missing modalities: zero-filled features in the head as in Concat; each mono score averages
over the samples that have the modality.
"""

import torch
from mmf.common.registry import registry

from mla_plugin.core.agm import AGMHook, coalitions, mono_scores, shapley_responses
from mla_plugin.core.encoders import encoder_inputs
from mla_plugin.core.hooks import Step
from mla_plugin.core.losses import masked_cross_entropy
from mla_plugin.models.concat import Concat


def official_cap(num_modalities: int) -> float:
    """The authors' cap on r̄ − r: 10 with two modalities, 7 with three."""
    return 10.0 if num_modalities == 2 else 7.0


@registry.register_model("agm")
class AGM(Concat):
    NAME = "agm"

    @torch.no_grad()
    def coalition_outputs(self, sample_list) -> dict[frozenset, torch.Tensor]:
        """f(S) for every non-empty coalition S, in eval mode and without gradient."""
        was_training = self.training
        self.eval()
        try:
            real = self.encode(sample_list)
            zero = {
                m: enc(*[torch.zeros_like(x) for x in encoder_inputs(enc, sample_list, m)])
                for m, enc in self.encoders.items()
            }
            present = self.presence(sample_list)
            outputs = {}
            for S in coalitions(self.modalities):
                feats = {m: real[m] if m in S else zero[m] for m in self.modalities}
                outputs[S] = self.head(feats, present)[0]
        finally:
            self.train(was_training)
        return outputs

    def agm_scores(self, sample_list) -> dict[str, torch.Tensor]:
        responses = shapley_responses(
            self.coalition_outputs(sample_list),
            self.modalities,
            empty_coalition=self.config.agm_empty_coalition,
        )
        return mono_scores(responses, sample_list.targets, self.presence(sample_list))

    def training_steps(self, sample_list, iteration: int):
        scores = self.agm_scores(sample_list)
        out = self(sample_list)
        loss = masked_cross_entropy(out["scores"], sample_list.targets)
        outputs = dict(out, agm_scores=scores)
        yield Step(loss=loss, modality=None, features=out["features"], outputs=outputs)

    def training_hooks(self):
        cfg = self.config
        cap = official_cap(len(self.modalities)) if cfg.agm_cap is None else float(cfg.agm_cap)
        return [
            AGMHook(
                dict(self.encoders),
                self.head,
                alpha=float(cfg.agm_alpha),
                cap=cap,
                sign=cfg.agm_sign,
                clip=None if cfg.agm_clip is None else float(cfg.agm_clip),
            )
        ]
