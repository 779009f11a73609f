"""MMPareto (Wei and Hu, ICML 2024) on top of Concat: one unimodal head per modality
beside the fused head, trained on L_mm + Σ_m L_m; each encoder's gradient is the Pareto
combination of its multimodal and unimodal gradients
(:class:`~mla_plugin.core.mmpareto.MMParetoHook`).

The step records g_mm = ∇_encoders L_mm with one extra backward (``autograd.grad``,
graph kept) before the loop's backward of the summed loss, so a step costs two backward
passes for any M (the paper's code takes M + 1 plus a final one).  Switches
(``configs/models/mmpareto.yaml``): ``mmpareto_gamma``, ``mmpareto_zero_grads``
(False = BalanceBenchmark: no extra backward, no conflict ever seen),
``mmpareto_heads`` (``separate`` | ``slices``, BalanceBenchmark's fused-head slices).
Missing modalities: L_m averages over the samples that have m; the fused head
zero-fills an absent modality as Concat does.
"""

import torch
from mmf.common.registry import registry
from torch import nn

from mla_plugin.core.hooks import Step
from mla_plugin.core.losses import masked_cross_entropy
from mla_plugin.core.mmpareto import MULTIMODAL_GRADS, MMParetoHook
from mla_plugin.models.concat import Concat

HEADS = ("separate", "slices")


@registry.register_model("mmpareto")
class MMPareto(Concat):
    NAME = "mmpareto"
    # two backward passes after one forward: DDP's reducer cannot sync that
    ONE_STEP_PER_BATCH = False

    def build_head(self):
        super().build_head()
        self.heads = self.config.mmpareto_heads
        if self.heads not in HEADS:
            raise ValueError(
                f"model_config.mmpareto.mmpareto_heads must be one of {list(HEADS)}, "
                f"got {self.heads!r}"
            )
        if self.heads == "separate":
            self.unimodal_heads = nn.ModuleDict(
                {m: nn.Linear(self.feature_dim, self.num_classes) for m in self.modalities}
            )

    def forward(self, sample_list):
        out = super().forward(sample_list)
        if self.heads == "separate":
            out["modality_scores"] = {
                m: self.unimodal_heads[m](h) for m, h in out["features"].items()
            }
        return out

    def training_steps(self, sample_list, iteration: int):
        out = self(sample_list)
        targets, present = sample_list.targets, out["present"]
        l_mm = masked_cross_entropy(out["scores"], targets)
        loss = l_mm
        for j, m in enumerate(self.modalities):
            column = None if present is None else present[:, j]
            loss = loss + masked_cross_entropy(out["modality_scores"][m], targets, column)
        if self.config.mmpareto_zero_grads:
            out[MULTIMODAL_GRADS] = self._multimodal_grads(l_mm)
        yield Step(loss=loss, modality=None, features=out["features"], outputs=out)

    def _multimodal_grads(self, l_mm: torch.Tensor) -> dict[str, list]:
        """g_mm per encoder parameter (None where L_mm does not reach it)."""
        params = {m: list(self.encoders[m].parameters()) for m in self.modalities}
        flat = [p for m in self.modalities for p in params[m]]
        grads = torch.autograd.grad(l_mm, flat, retain_graph=True, allow_unused=True)
        out, i = {}, 0
        for m in self.modalities:
            out[m] = [None if g is None else g.detach() for g in grads[i : i + len(params[m])]]
            i += len(params[m])
        return out

    def training_hooks(self):
        cfg = self.config
        return [
            MMParetoHook(
                dict(self.encoders.items()),
                gamma=float(cfg.mmpareto_gamma),
                zero_grads=bool(cfg.mmpareto_zero_grads),
            )
        ]
