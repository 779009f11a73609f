"""Concat: one linear head on the concatenated features, trained on the fused CE.
Per-modality accuracy uses the modality's slice of the head plus bias/M (docs/method-notes.md §8, §12 row 21)."""

from mmf.common.registry import registry

from mla_plugin.core.fusion_heads import ConcatHead
from mla_plugin.models.base import MultimodalModel


@registry.register_model("concat")
class Concat(MultimodalModel):
    NAME = "concat"

    def build_head(self):
        self.head = ConcatHead(self.modalities, self.feature_dim, self.num_classes)
