"""FiLM (Perez et al. 2018; MLA appendix A.2): the conditioning modality c yields
[γ, β] = Linear(s -> 2s)(h_c); z = γ ⊙ h_o + β; logits = Linear(s -> C)(z); CE on the
logits.

* ``conditioning``: ``first`` (the first listed modality; audio/text in the paper) or a
  modality name.
* ``extension`` (M >= 3, not in the paper): ``chain`` -- c modulates the mean of the other
  modalities' features; ``pairwise_sum`` -- c modulates each other modality, the results
  are summed.  M = 2 is the same either way.
* Per-modality accuracy of m: the fused path with every other modality's features zeroed
  (the classifier needs the conditioning input, so a head on m alone is not defined).
* Missing modalities cannot be left out (γ, β need h_c and the classifier needs h_o):
  their features are zero-filled.
"""

from mmf.common.registry import registry

from mla_plugin.core.fusion_heads import FiLMHead
from mla_plugin.models.base import MultimodalModel


@registry.register_model("film")
class FiLM(MultimodalModel):
    NAME = "film"

    def build_head(self):
        cfg = self.config
        self.head = FiLMHead(
            self.modalities,
            self.feature_dim,
            self.num_classes,
            conditioning=cfg.conditioning,
            extension=cfg.extension,
        )
