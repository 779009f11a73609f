"""CPM-Net -- Cross Partial Multi-View Networks (Zhang et al., NeurIPS 2019; extended as
"Deep Partial Multi-View Learning", TPAMI 2020), framework-free parts.

The paper learns one latent vector h_n per sample and, from it, every *present* view
through a per-view "degradation" network f_v, while a clustering-like classification loss
structures the latent space:

* reconstruction (paper §3.1, the term Δ_r):
  ``Δ_r(S_n, h_n) = Σ_v s_nv ||f_v(h_n) - x_n^(v)||²``, s_nv = 1 when view v of sample n is
  present -- an absent view contributes nothing (:func:`reconstruction_loss`);
* compatibility and class score (§3.2): ``F(h, h_n) = h^T h_n`` and
  ``E_{h~T(y)} F(h, h_n)``, the mean compatibility of h_n with the latents of class y;
  with the inner product this is ``μ_y^T h_n``, μ_y the class mean (:func:`class_scores`);
* structured classification loss (§3.2):
  ``L_c = (1/N) Σ_n max_y [Δ(y_n, y) + E_{h~T(y)} F(h, h_n) - E_{h~T(y_n)} F(h, h_n)]``,
  Δ = 0/1 loss, so the true class gives 0 and the loss is >= 0 (:func:`structured_loss`);
* prediction (§3.2): ``y = argmax_y E_{h~T(y)} F(h, h_n)`` over the training latents.

The objective is ``(1/N) Σ_n Δ_r + λ L_c``.  (The equations are written out here rather
than cited by number: we could not check the numbering of both versions offline.)

Stand-ins (``docs/baselines.md``, "CPM-Net"): the paper optimises a free h_n per training
sample and, at test time, optimises each test latent on the reconstruction loss; here an
encoder network maps the present views' features to h (amortised inference,
:class:`PartialViewHead`), the views x^(v) are our encoders' features (detached targets),
and the training latents' class means are kept per epoch by :class:`PrototypeHook`.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .distributed import all_reduce_sum
from .hooks import Step, TrainingHook, register_hook
from .losses import scaled


def reconstruction_loss(
    reconstructions: torch.Tensor,
    targets: torch.Tensor,
    present: torch.Tensor,
    scale: str = "absolute",
) -> torch.Tensor:
    """``(1/N) Σ_n Σ_v s_nv ||f_v(h_n) - x_n^(v)||²``; ``scale="relative"`` divides it by
    d times the targets' mean square over the present views (detached;
    :func:`mla_plugin.core.losses.scaled`), a scale-free error.

    Args:
        reconstructions, targets: [N, V, d] (view v's reconstruction / observed features).
        present: [N, V] presence s_nv (bool or 0/1); absent views contribute nothing.
    """
    squared = (reconstructions - targets).pow(2).sum(dim=2)  # [N, V]
    p = present.to(squared.dtype)
    loss = (squared * p).sum(dim=1).mean()
    return scaled(loss, targets, p[..., None], scale, per_sample_dims=targets.shape[2])


def class_means(
    latent: torch.Tensor, targets: torch.Tensor, num_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class sums turned into means μ_y [C, k] and counts [C] (μ_y = 0 for an
    unseen class)."""
    sums = latent.new_zeros(num_classes, latent.shape[1]).index_add(0, targets, latent)
    counts = torch.bincount(targets, minlength=num_classes).to(latent.dtype)
    return sums / counts.clamp(min=1).unsqueeze(1), counts


def class_scores(latent: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """``E_{h~T(y)} F(h, h_n) = μ_y^T h_n`` for F the inner product: [N, C]."""
    return latent @ means.t()


def structured_loss(latent: torch.Tensor, targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """CPM-Net's structured classification loss with T(y) = the batch's latents of class y.

    ``mean_n max_y [Δ(y_n, y) + μ_y^T h_n - μ_{y_n}^T h_n]`` with Δ the 0/1 loss; classes
    without a sample in the batch are left out of the max (their expectation is undefined).
    h_n is itself one of the latents of its class, as in the paper's expectation over the
    training set.
    """
    means, counts = class_means(latent, targets, num_classes)
    scores = class_scores(latent, means)  # [N, C]
    true = scores.gather(1, targets.unsqueeze(1))
    delta = 1.0 - F.one_hot(targets, num_classes).to(scores.dtype)
    margins = (delta + scores - true).masked_fill(counts.unsqueeze(0) == 0, float("-inf"))
    return margins.max(dim=1).values.mean()


class PartialViewHead(nn.Module):
    """Latent encoder (the amortised stand-in for the free h_n), degradation networks f_v
    and the nearest-class rule.

    * ``h = Σ_{v present} A_v z_v / |present|`` with A_v = Linear(s -> k): any subset of
      views gives a latent of the same scale;
    * ``f_v = Linear(k -> s)``: view v's features reconstructed from h;
    * scores ``[N, C] = h μ^T`` with μ the buffer ``prototypes`` (class means of the training
      latents, written by :class:`PrototypeHook`; zeros before the first epoch ends).
    """

    def __init__(self, modalities: Sequence[str], dim: int, latent_dim: int, num_classes: int):
        super().__init__()
        self.modalities = list(modalities)
        self.num_classes = num_classes
        self.encoders = nn.ModuleDict({m: nn.Linear(dim, latent_dim) for m in self.modalities})
        self.degradation = nn.ModuleDict({m: nn.Linear(latent_dim, dim) for m in self.modalities})
        self.register_buffer("prototypes", torch.zeros(num_classes, latent_dim))

    def latent(self, features: dict[str, torch.Tensor], present: torch.Tensor) -> torch.Tensor:
        weights = present.to(features[self.modalities[0]].dtype)
        total = sum(
            weights[:, j : j + 1] * self.encoders[m](features[m])
            for j, m in enumerate(self.modalities)
        )
        return total / weights.sum(dim=1, keepdim=True).clamp(min=1)

    def forward(self, features: dict[str, torch.Tensor], present: torch.Tensor) -> dict:
        h = self.latent(features, present)
        recon = torch.stack([self.degradation[m](h) for m in self.modalities], dim=1)
        return {"latent": h, "reconstructions": recon, "scores": class_scores(h, self.prototypes)}

    @torch.no_grad()
    def set_prototypes(self, sums: torch.Tensor, counts: torch.Tensor) -> None:
        """μ_y = sums_y / counts_y for every class seen; an unseen class keeps its value."""
        seen = counts > 0
        self.prototypes[seen] = (sums[seen] / counts[seen].unsqueeze(1)).to(self.prototypes)


@register_hook("cpm_prototypes", model_hook=True)
class PrototypeHook(TrainingHook):
    """Accumulates the training latents (``outputs["latent"]``) per class over an epoch and,
    after its last batch, writes their class means into the head's ``prototypes`` (summed
    over ranks under torchrun, so every rank predicts alike).  The partial sums are saved
    with the hook state, so a run resumed mid-epoch continues them."""

    def __init__(self, head: PartialViewHead):
        self.head = head
        self.sums = torch.zeros_like(head.prototypes)
        self.counts = torch.zeros(head.num_classes, dtype=head.prototypes.dtype)

    def on_after_optimizer_step(self, step: Step) -> None:
        latent = step.outputs["latent"].detach()
        targets = step.batch["targets"]
        self.sums = self.sums.to(latent.device).index_add(0, targets, latent.to(self.sums))
        self.counts = self.counts.to(latent.device) + torch.bincount(
            targets, minlength=self.head.num_classes
        ).to(self.counts)
        if step.batch_index == step.num_batches - 1:
            self.head.set_prototypes(all_reduce_sum(self.sums), all_reduce_sum(self.counts))
            self.sums = torch.zeros_like(self.sums)
            self.counts = torch.zeros_like(self.counts)

    def state_dict(self) -> dict:
        return {"sums": self.sums.cpu(), "counts": self.counts.cpu()}

    def load_state_dict(self, state: dict) -> None:
        self.sums, self.counts = state["sums"].clone(), state["counts"].clone()
