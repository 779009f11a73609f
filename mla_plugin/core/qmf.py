"""QMF -- Quality-aware Multimodal Fusion (Zhang et al., ICML 2023).

Written from the paper and ``docs/baselines-notes.md`` §3 / ``docs/method-notes.md`` §8:

* confidence of modality m on sample x: the scaled negative free energy
  ``w_m(x) = logsumexp_k f_m(x)_k / T`` (T = 10 in the paper);
* fused logits ``Σ_m w_m(x) · f_m(x)``, with w detached (text-image code, MLA's re-implementation);
* loss ``CE(fused) + Σ_m CE(f_m) + λ Σ_m L_rank^m`` where the ranking regulariser (from CRL) asks
  that a sample with the smaller *accumulated* unimodal loss get the higher confidence.  The rank
  term uses the **non-detached** confidence, so it trains the unimodal logits through the energy;
  only the fusion weights are detached.  MLA's code drops CE(fused) for M3AE and uses λ = 0.1 for
  ResNet: hence ``fused_ce`` and ``rank_weight``.

The switches (T, detach, fused_ce, rank_weight, rank_margin_sign) have no defaults here: they are required
keyword arguments, and the QMF model's values are in ``mla_plugin/configs/models/qmf.yaml``.
"""

from collections.abc import Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F

from .distributed import world_size
from .hooks import Step, TrainingHook, register_hook


def energy_confidence(logits: torch.Tensor, *, temperature: float) -> torch.Tensor:
    """``logsumexp_k logits[:, k] / T`` -> [B] (negative free energy over T)."""
    return torch.logsumexp(logits, dim=1) / temperature


def qmf_fuse(
    unimodal_logits: dict[str, torch.Tensor],
    present: torch.Tensor | None = None,
    *,
    temperature: float,
    detach: bool,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Dynamic fusion ``Σ_m w_m f_m`` over the present modalities.

    ``present`` is Bool [B, M], columns in the order of ``unimodal_logits``; an absent modality
    contributes nothing.  Returns (fused [B, C], weights: modality -> [B]); ``detach=True``
    stops gradients through the weights (the text-image/MLA variant, ``docs/baselines-notes.md`` §3 item 2).
    """
    fused, weights = 0, {}
    for j, (m, f) in enumerate(unimodal_logits.items()):
        w = energy_confidence(f, temperature=temperature)
        if detach:
            w = w.detach()
        if present is not None:
            w = w * present[:, j].to(w.dtype)
        weights[m] = w
        fused = fused + w.unsqueeze(1) * f
    return fused, weights


class LossHistory:
    """Per-modality accumulated per-sample CE loss over training (CRL's ``History``).

    One float64 buffer of size N (the dataset size) per modality, on CPU; ``update`` adds
    each sample's loss at its dataset index every time the sample is seen, so after e epochs
    it holds the sum of e losses.  ``normalized`` min-max normalises with the min and max of
    the *whole* buffer (samples not yet seen included, as in CRL):
    ``(H[i] - min H) / (max H - min H)``, or 0 when the buffer is constant.
    """

    def __init__(self, modalities: Sequence[str], size: int):
        self.modalities = list(modalities)
        self.size = int(size)
        self.buffers = {m: torch.zeros(self.size, dtype=torch.float64) for m in self.modalities}

    def update(self, modality: str, indices: torch.Tensor, losses: torch.Tensor) -> None:
        """Add ``losses`` [K] at ``indices`` [K] (already gathered over ranks)."""
        self.buffers[modality].index_add_(
            0, indices.detach().long().cpu(), losses.detach().to(torch.float64).cpu()
        )

    def normalized(self, modality: str, indices: torch.Tensor) -> torch.Tensor:
        buf = self.buffers[modality]
        lo, hi = buf.min(), buf.max()
        vals = buf[indices.detach().long().cpu()]
        if hi - lo <= 0:
            return torch.zeros_like(vals)
        return (vals - lo) / (hi - lo)

    def state_dict(self) -> dict:
        return {
            "modalities": list(self.modalities),
            "size": self.size,
            "buffers": {m: b.clone() for m, b in self.buffers.items()},
        }

    def load_state_dict(self, state: dict) -> None:
        self.modalities = list(state["modalities"])
        self.size = int(state["size"])
        self.buffers = {m: b.clone().to(torch.float64) for m, b in state["buffers"].items()}


def gather_for_history(
    indices: torch.Tensor, losses: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """All-gather sample indices and losses over ranks so every rank's history stays equal.

    Assumes every rank has the same batch size (``DistributedSampler`` with ``drop_last`` or
    padding); no padding is done here.  Without an initialised process group it returns the
    inputs unchanged.
    """
    n = world_size()
    if n == 1:
        return indices, losses
    idx_list = [torch.empty_like(indices) for _ in range(n)]
    loss_list = [torch.empty_like(losses) for _ in range(n)]
    dist.all_gather(idx_list, indices.contiguous())
    dist.all_gather(loss_list, losses.contiguous())
    return torch.cat(idx_list), torch.cat(loss_list)


RANK_MARGIN_SIGNS = ("official", "plus")


def ranking_loss(
    confidence: torch.Tensor,
    history_values: torch.Tensor,
    valid: torch.Tensor | None = None,
    *,
    margin_sign: str,
) -> torch.Tensor:
    """CRL ranking regulariser between each sample i and its batch neighbour j = i+1 (roll -1).

    With c the confidence, h the normalised accumulated loss, T_i = sign(h_i - h_j) and
    m_i = |h_i - h_j|::

        official:  L = mean_i max(0, T_i (c_i - c_j) - m_i)
        plus:      L = mean_i max(0, T_i (c_i - c_j) + m_i)   (T_i != 0; 0 for ties)

    ``official`` is what QMF's released code computes in both its text-image and RGB-D
    trainers (``MarginRankingLoss(margin=0)(c, c_rolled + m / T, -T)``, T = 0 read as 1 in
    the division), and what the MLA code copies: a pair costs something only when the
    sample with the larger loss is *more* confident than the other by more than m.  ``plus``
    is the textbook margin-ranking reading (the sample with the smaller loss must be more
    confident by at least m), what this plugin computed before: ``docs/method-notes.md``
    §8.1.  E.g. c = (0.5, 0.3), h = (0.1, 0.6): official 0, plus 0.30 (for pair i = 0).
    Ties (T = 0) give zero loss under both but count in the mean.  ``valid`` (Bool [B])
    keeps only pairs whose two samples are both valid; no valid pair -> 0 (graph kept).
    """
    if margin_sign not in RANK_MARGIN_SIGNS:
        raise ValueError(
            f"qmf_rank_margin_sign: {margin_sign!r} is not one of {list(RANK_MARGIN_SIGNS)}"
        )
    h = history_values.to(device=confidence.device, dtype=confidence.dtype)
    c2 = torch.roll(confidence, -1)
    h2 = torch.roll(h, -1)
    target = torch.sign(h - h2)
    margin = (h - h2).abs()
    signed = margin if margin_sign == "plus" else -margin
    per = torch.clamp(target * (confidence - c2) + signed, min=0)
    if valid is not None:
        keep = valid & torch.roll(valid, -1)
        if not bool(keep.any()):
            return confidence.sum() * 0
        per = per[keep]
    return per.mean()


def qmf_loss(
    unimodal_logits: dict[str, torch.Tensor],
    fused_logits: torch.Tensor | None,
    targets: torch.Tensor,
    indices: torch.Tensor,
    history: LossHistory,
    present: torch.Tensor | None = None,
    *,
    fused_ce: bool,
    rank_weight: float,
    temperature: float,
    rank_margin_sign: str,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """QMF training loss ``[CE(fused)] + Σ_m CE_m + rank_weight · Σ_m rank_m``.

    ``CE_m`` averages over the samples where m is present (column m of ``present``, columns in
    the order of ``unimodal_logits``); ``rank_m`` uses the non-detached energy confidence of
    f_m against ``history.normalized(m, indices)`` over pairs with m present in both samples
    (:func:`ranking_loss` with ``margin_sign=rank_margin_sign``).
    Returns (loss, per-sample unimodal CE: modality -> [B], detached, NaN where m is absent)
    -- put the latter in ``outputs["qmf_sample_losses"]`` for :class:`QMFHistoryHook`.
    """
    loss = F.cross_entropy(fused_logits, targets) if fused_ce else 0
    sample_losses = {}
    for j, (m, f) in enumerate(unimodal_logits.items()):
        ce = F.cross_entropy(f, targets, reduction="none")
        valid = present[:, j].bool() if present is not None else None
        if valid is None:
            loss = loss + ce.mean()
            sample_losses[m] = ce.detach()
        else:
            loss = loss + (ce[valid].mean() if bool(valid.any()) else ce.sum() * 0)
            sample_losses[m] = torch.where(valid, ce.detach(), torch.full_like(ce, float("nan")))
        conf = energy_confidence(f, temperature=temperature)
        rank = ranking_loss(
            conf, history.normalized(m, indices), valid, margin_sign=rank_margin_sign
        )
        loss = loss + rank_weight * rank
    return loss, sample_losses


@register_hook("qmf", model_hook=True)
class QMFHistoryHook(TrainingHook):
    """After each optimizer step, add ``outputs["qmf_sample_losses"]`` at ``batch["index"]``.

    Entries that are not finite (NaN = modality absent, see :func:`qmf_loss`) are skipped.
    Under DDP the indices and losses are all-gathered first (:func:`gather_for_history`).
    """

    def __init__(self, history: LossHistory):
        self.history = history

    def on_after_optimizer_step(self, step: Step) -> None:
        losses = step.outputs.get("qmf_sample_losses")
        if not losses:
            return
        indices = step.batch["index"]
        for m, loss in losses.items():
            idx, val = gather_for_history(indices.to(loss.device), loss.detach())
            keep = torch.isfinite(val)
            self.history.update(m, idx[keep], val[keep])

    def state_dict(self) -> dict:
        return {"history": self.history.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.history.load_state_dict(state["history"])
