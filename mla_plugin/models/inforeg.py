"""InfoReg (Huang, Wei, Yang and Hu, CVPR 2025) on top of Concat: trained on the fused
CE plus each modality's CE on its slice of the fused head (W_m h_m + b/M), with the
information-sufficient modality's encoder pulled toward its epoch-start weights during
its prime learning window (:class:`~mla_plugin.core.inforeg.InfoRegHook`).

Switches (``configs/models/inforeg.yaml``): ``inforeg_beta`` (one base for every
modality) or ``inforeg_beta_by_modality`` (the official code's audio 0.95 / video 0.1),
``inforeg_window``, ``inforeg_threshold``, ``inforeg_window_modality`` (null: each
modality's own trace; the official code: audio's for all).  Missing modalities: each
unimodal CE and score averages or sums over the samples that have the modality.
"""

import yaml
from mmf.common.registry import registry

from mla_plugin.core.hooks import Step
from mla_plugin.core.inforeg import InfoRegHook
from mla_plugin.core.losses import masked_cross_entropy
from mla_plugin.models.concat import Concat


@registry.register_model("inforeg")
class InfoReg(Concat):
    NAME = "inforeg"

    def build_head(self):
        super().build_head()
        cfg = self.config
        by_modality = cfg.inforeg_beta_by_modality
        if by_modality is None:
            self.bases = {m: float(cfg.inforeg_beta) for m in self.modalities}
        else:
            if isinstance(by_modality, str):  # a command-line override: "{audio: 0.95, ...}"
                by_modality = yaml.safe_load(by_modality)
            if not hasattr(by_modality, "keys"):
                raise ValueError(
                    "model_config.inforeg.inforeg_beta_by_modality must map each modality "
                    f"to its base, got {cfg.inforeg_beta_by_modality!r}"
                )
            missing = [m for m in self.modalities if m not in by_modality]
            if missing:
                raise ValueError(
                    f"model_config.inforeg.inforeg_beta_by_modality has no entry for {missing}"
                )
            self.bases = {m: float(by_modality[m]) for m in self.modalities}
        wm = cfg.inforeg_window_modality
        if wm is not None and wm not in self.modalities:
            raise ValueError(
                f"model_config.inforeg.inforeg_window_modality: {wm!r} is not one of "
                f"{self.modalities}"
            )

    def training_steps(self, sample_list, iteration: int):
        out = self(sample_list)
        targets, present = sample_list.targets, out["present"]
        loss = masked_cross_entropy(out["scores"], targets)
        for j, m in enumerate(self.modalities):
            column = None if present is None else present[:, j]
            loss = loss + masked_cross_entropy(out["modality_scores"][m], targets, column)
        yield Step(loss=loss, modality=None, features=out["features"], outputs=out)

    def training_hooks(self):
        cfg = self.config
        return [
            InfoRegHook(
                dict(self.encoders.items()),
                bases=dict(self.bases),
                window=int(cfg.inforeg_window),
                threshold=float(cfg.inforeg_threshold),
                window_modality=cfg.inforeg_window_modality,
            )
        ]
