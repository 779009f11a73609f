"""AUG (Jiang, Huang, Yang, NeurIPS 2025): per-modality learners on one shared
classifier, trained modality by modality on each batch (as MLA alternates), with learners
added during training to the weaker modality (:mod:`mla_plugin.core.aug`).

Added learners are pre-allocated: ``aug_max_learners`` per modality exist from the start,
in the optimizer and in every checkpoint, and an inactive one is outside the forward, so
its gradient stays None and the optimizer leaves it exactly as it is (no momentum, no
weight decay).  Activating one is flipping a count in the ``active`` buffer (saved with
the weights).  We chose this over ``optimizer.add_param_group`` from a hook because the
optimizer's parameter groups and state then have one shape for the whole run: a resume
loads the optimizer as saved, without re-adding groups in the order the run added them.

Switches (``configs/models/aug.yaml``): ``aug_hidden``, ``aug_max_learners``,
``aug_balance`` (λ), ``aug_margin``, ``aug_interval``, ``aug_merge`` (μ),
``aug_residual_weight``, ``aug_train_added`` (false: the official code, whose optimizer
never sees the added learners).  Two modalities only.  Missing modalities: each
modality's loss covers the samples that have it; the merge uses the present modality alone.
"""

import torch
from mmf.common.registry import registry
from torch import nn

from mla_plugin.core.aug import AdaptiveAssignment, boosting_loss, merge_logits
from mla_plugin.core.hooks import Step
from mla_plugin.models.base import MultimodalModel


@registry.register_model("aug")
class AUG(MultimodalModel):
    NAME = "aug"
    ONE_STEP_PER_BATCH = False  # one step per modality, as MLA

    def build_head(self):
        cfg = self.config
        if len(self.modalities) != 2:
            raise ValueError(
                f"model_config.aug.modalities: AUG's assignment compares two modalities "
                f"(a confidence ratio), got {len(self.modalities)}: {self.modalities}"
            )
        for key in ("aug_hidden", "aug_max_learners"):
            if int(cfg[key]) < 1:
                raise ValueError(f"model_config.aug.{key}: {cfg[key]!r} must be >= 1")
        if not 0.0 <= float(cfg.aug_merge) <= 1.0:
            raise ValueError(f"model_config.aug.aug_merge: {cfg.aug_merge!r} must be in [0, 1]")
        hidden, self.max_learners = int(cfg.aug_hidden), int(cfg.aug_max_learners)
        # learner 0 is the base embedding A_m^0; 1..max_learners are the ones added later
        self.learners = nn.ModuleDict(
            {
                m: nn.ModuleList(
                    nn.Linear(self.feature_dim, hidden) for _ in range(self.max_learners + 1)
                )
                for m in self.modalities
            }
        )
        for layers in self.learners.values():
            for layer in layers:  # Xavier-normal weights, zero bias (the paper's new learners)
                nn.init.xavier_normal_(layer.weight)
                nn.init.zeros_(layer.bias)
        self.classifier = nn.Linear(hidden, self.num_classes)  # the shared W
        nn.init.xavier_normal_(self.classifier.weight)
        nn.init.zeros_(self.classifier.bias)
        self.register_buffer("active", torch.zeros(len(self.modalities), dtype=torch.long))
        self._merge = float(cfg.aug_merge)
        self._residual = float(cfg.aug_residual_weight)

    def modality_logits(self, m, h):
        """``(F_m, O_m, N_m)``: all learners, all but the newest, the newest (None, None
        without added learners)."""
        count = int(self.active[self.modalities.index(m)])
        parts = [self.classifier(torch.relu(self.learners[m][j](h))) for j in range(count + 1)]
        ensemble = torch.stack(parts).sum(0)
        if count == 0:
            return ensemble, None, None
        return ensemble, ensemble - parts[-1], parts[-1]

    def add_learner(self, m) -> bool:
        i = self.modalities.index(m)
        if int(self.active[i]) >= self.max_learners:
            return False
        self.active[i] += 1
        return True

    def added_parameters(self):
        """The parameters of every added learner (the official code never trains them)."""
        return [
            p
            for layers in self.learners.values()
            for layer in layers[1:]
            for p in layer.parameters()
        ]

    def forward(self, sample_list):
        features = self.encode(sample_list)
        present = self.presence(sample_list)
        unimodal = {m: self.modality_logits(m, features[m])[0] for m in self.modalities}
        return {
            "scores": merge_logits(unimodal, self._merge, present),
            "modality_scores": unimodal,
            "features": features,
            "present": present,
        }

    def training_steps(self, sample_list, iteration):
        """One step per modality, in order: its sustained-boosting loss through its own
        encoder and learners and the shared W (computed just before its step)."""
        features = self.encode(sample_list)
        mask = self.presence(sample_list)
        for i, m in enumerate(self.modalities):
            present = None if mask is None else mask[:, i]
            if present is not None and not bool(present.any()):
                continue
            ensemble, previous, newest = self.modality_logits(m, features[m])
            loss = boosting_loss(
                ensemble, previous, newest, sample_list.targets,
                residual_weight=self._residual, present=present,
            )  # fmt: skip
            yield Step(
                loss=loss,
                modality=m,
                modality_index=i,
                features=features,
                outputs={"modality_scores": {m: ensemble}},
            )

    def training_hooks(self):
        cfg = self.config
        return [
            AdaptiveAssignment(
                self.add_learner,
                self.modalities,
                balance=float(cfg.aug_balance),
                margin=float(cfg.aug_margin),
                interval=None if cfg.aug_interval is None else int(cfg.aug_interval),
                frozen=None if cfg.aug_train_added else self.added_parameters,
            )
        ]
