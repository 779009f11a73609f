"""Sum: one Linear(s -> C) per modality, the logits summed, trained on the CE of the sum
(MLA appendix A.2).

Per-modality accuracy uses each modality's own head; ``unimodal_bias: div_m`` (default)
adds b_m / M, as the MLA code's unimodal evaluation does (bias/2 for two modalities),
``full`` uses the whole bias.  Missing modalities are left out of the sum.
"""

from mmf.common.registry import registry

from mla_plugin.core.fusion_heads import SumHead
from mla_plugin.models.base import MultimodalModel


@registry.register_model("sum")
class Sum(MultimodalModel):
    NAME = "sum"

    def build_head(self):
        self.head = SumHead(
            self.modalities,
            self.feature_dim,
            self.num_classes,
            unimodal_bias=self.config.unimodal_bias,
        )
