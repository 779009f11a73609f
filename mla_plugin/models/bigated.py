"""BiGated (gated fusion; MLA appendix A.2): u_m = Linear_m(s -> s)(h_m) per modality,
z = sigmoid(u_g) ⊙ u_o with g the gating modality, logits = Linear(s -> C)(z); CE on the
logits.

* ``gate``: ``first`` (the first listed modality) or a modality name.
* ``extension`` (M >= 3, not in the paper): ``chain`` -- the gate multiplies the mean of
  the other modalities' hidden states; ``pairwise_sum`` -- it gates each of them, the
  results are summed.  M = 2 is the same either way.
* Per-modality accuracy of m: the fused path with every other modality's features zeroed.
* Missing modalities are zero-filled (features), so their hidden state is their Linear's
  bias: the gate cannot leave a modality out.
"""

from mmf.common.registry import registry

from mla_plugin.core.fusion_heads import BiGatedHead
from mla_plugin.models.base import MultimodalModel


@registry.register_model("bigated")
class BiGated(MultimodalModel):
    NAME = "bigated"

    def build_head(self):
        cfg = self.config
        self.head = BiGatedHead(
            self.modalities,
            self.feature_dim,
            self.num_classes,
            gate=cfg.gate,
            extension=cfg.extension,
        )
