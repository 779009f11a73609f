"""ReconBoost (Hua et al., ICML 2024): an ensemble ``F = β Σ_m g_m`` of unimodal learners
(``g_m`` = head ∘ encoder m) boosted in alternating rounds (:mod:`mla_plugin.core.reconboost`).

The rounds are the trainer's stages (``stages()``): round r boosts modality r mod M for
``reconboost_boost_epochs`` epochs, the other learners and β frozen (their gradients
dropped by the stage runner, so no momentum or weight decay moves them), then rectifies
every learner and β on the ensemble's CE for ``reconboost_rectify_epochs``.  After
``reconboost_rounds`` rounds the last rectification goes on to the end of training.  A
resume lands in the right round: the stage runner re-enters the saved stage, which calls
:meth:`ReconBoost.set_stage`.

A boosting step encodes only the boosted modality with a graph (the frozen ones under
``no_grad``).  Switches (``configs/models/reconboost.yaml``): the learners' heads (own |
shared, BalanceBenchmark's one Linear for all), the boost rate's start (1.0 official code;
0.01 BalanceBenchmark), w1, w2, α and ``reconboost_ga_detached`` (the official code's
reconcilement term without gradient).  Missing modalities: an absent learner is left out
of F and of the others' joint prediction, and a boosting step counts only the samples
that have the boosted modality.
"""

from __future__ import annotations

import torch
from mmf.common.registry import registry
from torch import nn

from mla_plugin.core.encoders import encoder_inputs
from mla_plugin.core.hooks import Step
from mla_plugin.core.losses import masked_cross_entropy
from mla_plugin.core.reconboost import boosting_loss, reconcilement_loss
from mla_plugin.core.stages import Stage
from mla_plugin.models.base import MultimodalModel

HEADS = ("own", "shared")


@registry.register_model("reconboost")
class ReconBoost(MultimodalModel):
    NAME = "reconboost"

    def build_head(self):
        cfg = self.config
        where = "model_config.reconboost"
        if cfg.reconboost_head not in HEADS:
            raise ValueError(
                f"{where}.reconboost_head: {cfg.reconboost_head!r} is not one of {list(HEADS)}"
            )
        for key in ("reconboost_rounds", "reconboost_boost_epochs", "reconboost_rectify_epochs"):
            if int(cfg[key]) < 1:
                raise ValueError(f"{where}.{key} must be >= 1, got {cfg[key]}")
        self.shared = cfg.reconboost_head == "shared"
        if self.shared:
            self.head = nn.Linear(self.feature_dim, self.num_classes)
        else:
            self.heads = nn.ModuleDict(
                {m: nn.Linear(self.feature_dim, self.num_classes) for m in self.modalities}
            )
        self.boost_rate = nn.Parameter(torch.tensor(float(cfg.reconboost_boost_rate)))
        self.w1, self.w2 = float(cfg.reconboost_w1), float(cfg.reconboost_w2)
        self.alpha, self.ga_detached = float(cfg.reconboost_alpha), bool(cfg.reconboost_ga_detached)
        self.rounds = int(cfg.reconboost_rounds)
        self.boost_epochs = int(cfg.reconboost_boost_epochs)
        self.rectify_epochs = int(cfg.reconboost_rectify_epochs)
        self.boosted: str | None = None  # the modality this stage boosts (None: rectify)
        self.previous: str | None = None  # the learner the round before boosted

    # ------------------------------------------------------------------ stages
    def round_modality(self, r: int) -> str:
        return self.modalities[r % len(self.modalities)]

    def stages(self):
        out = []
        for r in range(self.rounds):
            m = self.round_modality(r)
            others = [n for n in self.modalities if n != m]
            frozen = [f"encoders.{n}" for n in others] + ["boost_rate"]
            if not self.shared:
                frozen += [f"heads.{n}" for n in others]
            out.append(Stage(f"boost{r + 1}_{m}", self.boost_epochs, tuple(frozen)))
            last = r == self.rounds - 1
            out.append(Stage(f"rectify{r + 1}", None if last else self.rectify_epochs))
        return out

    def set_stage(self, stage: Stage) -> None:
        if stage.name.startswith("boost"):
            r = int(stage.name[len("boost") :].split("_", 1)[0]) - 1
            self.boosted = self.round_modality(r)
            self.previous = self.round_modality(r - 1) if r > 0 else None
        else:
            self.boosted = None

    # ----------------------------------------------------------------- forward
    def learner(self, m: str, h: torch.Tensor) -> torch.Tensor:
        return self.head(h) if self.shared else self.heads[m](h)

    def outputs(self, sample_list, graph=None):
        """Features, learners' logits and the ensemble's; ``graph``: the only modality
        encoded with a graph (None: all)."""
        features = {}
        for m in self.modalities:
            with torch.set_grad_enabled(torch.is_grad_enabled() and graph in (None, m)):
                enc = self.encoders[m]
                features[m] = enc(*encoder_inputs(enc, sample_list, m))
        present = self.presence(sample_list)
        logits = {m: self.learner(m, features[m]) for m in self.modalities}
        fused = self.boost_rate * self.ensemble_sum(logits, present)
        return {"scores": fused, "modality_scores": logits, "features": features,
                "present": present}  # fmt: skip

    def ensemble_sum(self, logits, present, leave_out=None) -> torch.Tensor:
        """``Σ_m g_m`` over the present learners (other than ``leave_out``)."""
        total = 0
        for j, (m, g) in enumerate(logits.items()):
            if m == leave_out:
                continue
            total = total + (g if present is None else g * present[:, j : j + 1].to(g.dtype))
        return total

    def forward(self, sample_list):
        return self.outputs(sample_list)

    def training_steps(self, sample_list, iteration):
        m = self.boosted
        out = self.outputs(sample_list, graph=m)
        targets, present = sample_list.targets, out["present"]
        if m is None:  # global rectification
            loss = masked_cross_entropy(out["scores"], targets)
            yield Step(loss=loss, features=out["features"], outputs=out)
            return
        j = self.modalities.index(m)
        mask = None if present is None else present[:, j]
        logits = out["modality_scores"]
        joint = self.boost_rate.detach() * self.ensemble_sum(logits, present, leave_out=m)
        if not torch.is_tensor(joint):  # (no other learner: cannot happen with M >= 2)
            joint = torch.zeros_like(logits[m])
        loss = boosting_loss(logits[m], joint, targets, w1=self.w1, w2=self.w2, present=mask)
        if self.previous is not None and self.alpha:
            ga = reconcilement_loss(logits[m], logits[self.previous], detached=self.ga_detached,
                                    present=mask)  # fmt: skip
            loss = loss + self.alpha * ga
        yield Step(loss=loss, modality=m, modality_index=j, features=out["features"],
                   outputs=out)  # fmt: skip
