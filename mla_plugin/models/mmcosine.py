"""MMCosine (Xu et al., ICASSP 2023): the encoders of every method, and a head of scaled
cosine logits per modality summed into the fused logits
(:class:`~mla_plugin.core.mmcosine.CosineHead`), trained on the fused CE.

Per-modality accuracy uses each modality's own cosine logits.  Switches
(``configs/models/mmcosine.yaml``): ``mmcosine_scale`` (s; the authors' README 10,
BalanceBenchmark 15).  Missing modalities: an absent one is left out of the sum.
"""

from mmf.common.registry import registry

from mla_plugin.core.mmcosine import CosineHead
from mla_plugin.models.base import MultimodalModel


@registry.register_model("mmcosine")
class MMCosine(MultimodalModel):
    NAME = "mmcosine"

    def build_head(self):
        scale = float(self.config.mmcosine_scale)
        if not scale > 0:
            raise ValueError(f"model_config.mmcosine.mmcosine_scale must be > 0, got {scale}")
        self.head = CosineHead(self.modalities, self.feature_dim, self.num_classes, scale=scale)
