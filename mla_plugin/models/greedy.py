"""Greedy (Wu et al., ICML 2022): Concat with one MMTM block between the encoders and the
head, trained with the paper's re-balancing steps (:mod:`mla_plugin.core.greedy`).

The paper connects two CNN branches with MMTM blocks at several depths; our encoders give
one vector per modality (MLPs, frozen features), so there is one block, on the encoder
outputs.  A hook measures the conditional learning speeds after every backward and opens
the re-balancing windows; during one, the caring modality's gate is its running average.
Per-modality logits: the head's slices of the gated features.  Missing modalities: an
absent modality's features are zeroed before the block (the gate cannot carry them).
Switches: ``configs/models/greedy.yaml``.
"""

from mmf.common.registry import registry

from mla_plugin.core.greedy import MMTM, ConditionalSpeed, learning_speeds
from mla_plugin.core.hooks import Step, TrainingHook, register_hook
from mla_plugin.core.losses import masked_cross_entropy
from mla_plugin.models.concat import Concat


@register_hook("greedy", model_hook=True)
class GreedyHook(TrainingHook):
    """After each backward: the speeds into :class:`ConditionalSpeed` (checkpointed);
    ``summary()``: per epoch, the re-balancing steps per modality and the last BDRs."""

    def __init__(self, model: "Greedy", speed: ConditionalSpeed):
        self.model, self.speed = model, speed
        self.log: dict[int, dict] = {}

    def on_before_optimizer_step(self, step: Step) -> None:
        if step.skipped:
            return
        model = self.model
        entry = self.log.setdefault(
            step.epoch, {"steps": 0, "rebalancing": {m: 0 for m in model.modalities}}
        )
        entry["steps"] += 1
        if self.speed.caring is not None:
            entry["rebalancing"][self.speed.caring] += 1
        groups = {}
        for m in model.modalities:
            groups[("bypass", m)] = model.mmtm.bypass_parameters(m)
            groups[("main", m)] = list(model.encoders[m].parameters())
        speeds = learning_speeds(groups)
        self.speed.after_step(
            {m: speeds[("bypass", m)] for m in model.modalities},
            {m: speeds[("main", m)] for m in model.modalities},
            step.epoch - 1,
        )
        entry["bdr"] = self.speed.bdr()

    def summary(self) -> dict:
        return {"epochs": [{"epoch": e, **v} for e, v in sorted(self.log.items())]}

    def state_dict(self) -> dict:
        log = {e: {**v, "rebalancing": dict(v["rebalancing"])} for e, v in self.log.items()}
        return {"speed": self.speed.state_dict(), "log": log}

    def load_state_dict(self, state: dict) -> None:
        self.speed.load_state_dict(state["speed"])
        self.log = {int(e): dict(v) for e, v in state["log"].items()}


@registry.register_model("greedy")
class Greedy(Concat):
    NAME = "greedy"

    def build_head(self):
        super().build_head()
        cfg = self.config
        key = "model_config.greedy."
        ratio, threshold = float(cfg.greedy_squeeze_ratio), float(cfg.greedy_threshold)
        window, start = int(cfg.greedy_window), int(cfg.greedy_start_epoch)
        if ratio <= 0 or threshold < 0 or window < 0 or start < 0:
            raise ValueError(
                f"{key}greedy_squeeze_ratio must be > 0 and greedy_threshold, greedy_window, "
                f"greedy_start_epoch >= 0; got {ratio}, {threshold}, {window}, {start}"
            )
        self.mmtm = MMTM(self.modalities, self.feature_dim, ratio)
        self.speed = ConditionalSpeed(
            self.modalities, threshold=threshold, window=window, start_epoch=start
        )

    def training_hooks(self):
        return [GreedyHook(self, self.speed)]

    def gated(self, sample_list, constant=None):
        features = self.encode(sample_list)
        present = self.presence(sample_list)
        if present is not None:
            features = {
                m: h * present[:, j : j + 1].to(h.dtype)
                for j, (m, h) in enumerate(features.items())
            }
        return self.mmtm(features, constant=constant), present

    def forward(self, sample_list):
        features, present = self.gated(sample_list)
        fused, unimodal = self.head(features, present)
        return {
            "scores": fused,
            "modality_scores": unimodal,
            "features": features,
            "present": present,
        }

    def training_steps(self, sample_list, iteration):
        features, present = self.gated(sample_list, constant=self.speed.caring)
        fused, unimodal = self.head(features, present)
        out = {
            "scores": fused,
            "modality_scores": unimodal,
            "features": features,
            "present": present,
        }
        loss = masked_cross_entropy(fused, sample_list.targets)
        yield Step(loss=loss, modality=None, features=features, outputs=out)
