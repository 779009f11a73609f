"""Late fusion: an encoder and a head per modality, each trained only on its own
cross-entropy; the fused prediction is the mean of the present modalities' logits."""

from mmf.common.registry import registry

from mla_plugin.core.fusion_heads import LateFusionHead
from mla_plugin.core.hooks import Step
from mla_plugin.core.losses import masked_cross_entropy
from mla_plugin.models.base import MultimodalModel


@registry.register_model("mla_late_fusion")
class LateFusion(MultimodalModel):
    NAME = "mla_late_fusion"

    def build_head(self):
        self.head = LateFusionHead(self.modalities, self.feature_dim, self.num_classes)

    def training_steps(self, sample_list, iteration):
        out = self(sample_list)
        mask = self.presence(sample_list)
        loss = sum(
            masked_cross_entropy(
                out["modality_scores"][m], sample_list.targets, None if mask is None else mask[:, i]
            )
            for i, m in enumerate(self.modalities)
        )
        yield Step(loss=loss, modality=None, features=out["features"], outputs=out)
