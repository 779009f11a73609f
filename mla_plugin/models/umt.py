"""UMT, Uni-Modal Teacher (Du et al., ICML 2023), on top of Concat, in two stages
(docs/trainer.md "Stages"):

1. ``teachers`` (``umt_teacher_epochs`` epochs): a unimodal model per modality
   (:class:`~mla_plugin.core.umt.UnimodalTeacher`, under ``teachers.<m>``), each on its own
   CE; the student (``encoders``, ``head``) is frozen;
2. ``student`` (to the end): the Concat student on CE(fused) + γ·Σ_m MSE(h_m, h_m^teacher),
   the teachers frozen (grad None: no step, momentum or weight decay) and run in eval mode
   without gradient.

The paper trains each teacher to convergence as its own run; here the teachers take the
first ``umt_teacher_epochs`` of the run's budget, so UMT trains as many epochs as every
other method.  ``forward`` is the student's (its fused and slice logits), in both stages.
Missing modalities: a teacher's CE and a modality's distillation count only the samples
that have it; the student zero-fills absent features as Concat does.
"""

import torch
from mmf.common.registry import registry
from torch import nn

from mla_plugin.core.encoders import build_encoder, encoder_inputs
from mla_plugin.core.hooks import Step
from mla_plugin.core.losses import masked_cross_entropy
from mla_plugin.core.stages import Stage
from mla_plugin.core.umt import UnimodalTeacher, feature_distillation
from mla_plugin.models.concat import Concat

TEACHERS, STUDENT = "teachers", "student"


@registry.register_model("umt")
class UMT(Concat):
    NAME = "umt"

    def build(self):
        super().build()
        cfg = self.config
        epochs = cfg.umt_teacher_epochs
        if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
            raise ValueError(
                f"model_config.umt.umt_teacher_epochs must be an integer >= 1, got {epochs!r}"
            )
        self.teacher_epochs = epochs
        self.distill_weight = float(cfg.umt_distill_weight)
        self.teachers = nn.ModuleDict(
            {
                m: UnimodalTeacher(build_encoder(cfg.encoders[m]), self.num_classes)
                for m in self.modalities
            }
        )
        self.stage_name = TEACHERS

    def stages(self):
        return [
            Stage(TEACHERS, epochs=self.teacher_epochs, freezes=("encoders", "head")),
            Stage(STUDENT, freezes=("teachers",)),
        ]

    def set_stage(self, stage) -> None:
        self.stage_name = stage.name

    def _column(self, mask, j):
        return None if mask is None else mask[:, j]

    def teacher_step(self, sample_list) -> Step:
        mask = self.presence(sample_list)
        features, logits, loss = {}, {}, 0.0
        for j, (m, teacher) in enumerate(self.teachers.items()):
            features[m], logits[m] = teacher(*encoder_inputs(teacher.encoder, sample_list, m))
            loss = loss + masked_cross_entropy(
                logits[m], sample_list.targets, self._column(mask, j)
            )
        return Step(loss=loss, features=features, outputs={"modality_scores": logits})

    @torch.no_grad()
    def teacher_features(self, sample_list) -> dict[str, torch.Tensor]:
        was_training = self.teachers.training
        self.teachers.eval()
        try:
            return {
                m: t.encoder(*encoder_inputs(t.encoder, sample_list, m))
                for m, t in self.teachers.items()
            }
        finally:
            self.teachers.train(was_training)

    def training_steps(self, sample_list, iteration: int):
        if self.stage_name == TEACHERS:
            yield self.teacher_step(sample_list)
            return
        targets = self.teacher_features(sample_list)
        out = self(sample_list)
        mask = self.presence(sample_list)
        loss = masked_cross_entropy(out["scores"], sample_list.targets)
        for j, m in enumerate(self.modalities):
            loss = loss + self.distill_weight * feature_distillation(
                out["features"][m], targets[m], self._column(mask, j)
            )
        yield Step(loss=loss, modality=None, features=out["features"], outputs=out)
