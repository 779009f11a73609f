"""OPM, On-the-fly Prediction Modulation (Wei et al., TPAMI 2024), on top of Concat.

Each training step after ``opm_warmup_epochs``, the dominant modality's features are
dropped per sample with a probability that grows with the batch's discrepancy ratio, the
kept features rescaled, and the fused CE taken on the samples that kept a modality
(:mod:`mla_plugin.core.opm`).  The discrepancy scores come from the fused head's slices of
the undropped forward (the same logits that give the per-modality accuracy; detached).
Switches: ``configs/models/opm.yaml``.  Missing modalities: an absent modality's features
are zero-filled as in Concat, it is left out of the scores, and a sample whose present
modalities were all dropped leaves the loss.  The journal's OGM variant is the ``ogm``
model (``ogm_start_epoch: 5`` for its warm-up).
"""

import torch
from mmf.common.registry import registry

from mla_plugin.core.hooks import Step, TrainingHook, register_hook
from mla_plugin.core.losses import masked_cross_entropy
from mla_plugin.core.ogm_ge import EXTENSIONS, all_reduce_scores, discrepancy_scores, score_ratios
from mla_plugin.core.opm import drop_features, drop_probabilities, feature_scale
from mla_plugin.models.concat import Concat


@register_hook("opm", model_hook=True)
class OPMRecordHook(TrainingHook):
    """Tells the model the epoch (1-based) and keeps, per epoch, the steps, how many were
    modulated and the mean drop probability per modality (``summary()``; checkpointed)."""

    def __init__(self, model: "OPM"):
        self.model = model
        self.log: dict[int, dict] = {}

    def on_train_epoch_start(self, epoch: int, num_batches: int) -> None:
        self.model.epoch = epoch

    def on_before_optimizer_step(self, step: Step) -> None:
        q = step.outputs.get("opm_q", {})
        entry = self.log.setdefault(
            step.epoch,
            {"steps": 0, "modulated": 0, "sum_q": {m: 0.0 for m in self.model.modalities}},
        )
        entry["steps"] += 1
        entry["modulated"] += int(bool(step.outputs.get("opm_modulated", False)))
        for m, v in q.items():
            entry["sum_q"][m] += v

    def summary(self) -> dict:
        return {
            "epochs": [
                {
                    "epoch": e,
                    "steps": v["steps"],
                    "modulated": v["modulated"],
                    "mean_q": {m: s / max(v["steps"], 1) for m, s in v["sum_q"].items()},
                }
                for e, v in sorted(self.log.items())
            ]
        }

    def state_dict(self) -> dict:
        return {"log": {e: {**v, "sum_q": dict(v["sum_q"])} for e, v in self.log.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.log = {int(e): {**v, "sum_q": dict(v["sum_q"])} for e, v in state["log"].items()}


@registry.register_model("opm")
class OPM(Concat):
    NAME = "opm"

    def build_head(self):
        super().build_head()
        cfg = self.config
        key = "model_config.opm."
        self.q_base = float(cfg.opm_q_base)
        self.strength = float(cfg.opm_strength)
        self.p_exe = float(cfg.opm_p_exe)
        self.warmup = int(cfg.opm_warmup_epochs)
        self.extension = cfg.opm_extension
        for name, v in (("opm_q_base", self.q_base), ("opm_p_exe", self.p_exe)):
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{key}{name} must be in [0, 1], got {v}")
        if self.strength < 0 or self.warmup < 0:
            raise ValueError(f"{key}opm_strength and opm_warmup_epochs must be >= 0")
        if self.extension not in EXTENSIONS:
            raise ValueError(f"{key}opm_extension must be one of {list(EXTENSIONS)}")
        self.epoch = 1  # the hook sets it at each epoch's start

    def training_hooks(self):
        return [OPMRecordHook(self)]

    def drop_plan(self, unimodal, targets, present) -> dict[str, float]:
        """q_m from this batch's slice logits (all ranks agree under torchrun)."""
        scores = all_reduce_scores(discrepancy_scores(unimodal, targets, present))
        ratios = score_ratios(scores, extension=self.extension)
        return drop_probabilities(ratios, q_base=self.q_base, strength=self.strength)

    def training_steps(self, sample_list, iteration):
        features = self.encode(sample_list)
        present = self.presence(sample_list)
        fused, uni = self.head(features, present)
        out = {"scores": fused, "modality_scores": uni, "features": features, "present": present}
        targets = sample_list.targets
        loss = None
        if self.epoch - 1 >= self.warmup:
            q = self.drop_plan(uni, targets, present)
            out["opm_q"] = q
            if any(v > 0 for v in q.values()) and float(torch.rand(())) < self.p_exe:
                dims = {m: features[m].shape[1] for m in self.modalities}
                dropped, survivors = drop_features(features, q, present, feature_scale(q, dims))
                dropped_logits, _ = self.head(dropped, None)
                loss = masked_cross_entropy(dropped_logits, targets, survivors.float())
                out["opm_modulated"] = True
        if loss is None:
            loss = masked_cross_entropy(fused, targets)
        yield Step(loss=loss, modality=None, features=features, outputs=out)
