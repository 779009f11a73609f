"""UME, Uni-Modal Ensemble (Du et al., ICML 2023): a unimodal model per modality (an
encoder and its own linear head), each trained only on its own CE, and the prediction the
average of their outputs.  Its training is late fusion's (``mla_late_fusion``); what UME
adds is the averaging rule, ``ume_average`` (``configs/models/ume.yaml``): the mean of the
present modalities' logits (with ``logits`` UME predicts exactly as ``mla_late_fusion``)
or of their probabilities (:func:`~mla_plugin.core.umt.ensemble_average`).  Any M; an
absent modality is left out of its CE and of the average.
"""

from mmf.common.registry import registry

from mla_plugin.core.umt import AVERAGES, ensemble_average
from mla_plugin.models.late_fusion import LateFusion


@registry.register_model("ume")
class UME(LateFusion):
    NAME = "ume"

    def build(self):
        super().build()
        if self.config.ume_average not in AVERAGES:
            raise ValueError(
                f"model_config.ume.ume_average must be one of {list(AVERAGES)}, "
                f"got {self.config.ume_average!r}"
            )

    def forward(self, sample_list):
        out = super().forward(sample_list)
        out["scores"] = ensemble_average(
            out["modality_scores"], out["present"], average=self.config.ume_average
        )
        return out
