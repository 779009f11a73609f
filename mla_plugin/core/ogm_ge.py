"""OGM-GE -- On-the-fly Gradient Modulation + Generalization Enhancement (Peng et al., CVPR 2022).

Written from the paper and ``docs/baselines-notes.md`` §2 / ``docs/method-notes.md`` §8:

1. score  s_m = Σ_i softmax(f_m(x_i))[y_i] from the (sliced) unimodal logits of the batch;
2. ratio  ρ_a = s_a / s_v (two modalities);
3. the dominant modality (ρ > 1) gets k = 1 - tanh(α·ρ), the other k = 1;
4. after ``loss.backward()``: g <- k·g on the dominant encoder's parameters;
5. GE: g <- k·g + N(0, σ²), σ = std(g) + 1e-8 of the *unscaled* gradient tensor;
6. only for epochs start <= epoch <= end (epochs counted from 0, as in the reference code).

The method's switches (α, the window, params, GE and its scope, the M >= 3 extension, the
seed) are required keyword arguments with no defaults here; the OGM-GE model's values are
in ``mla_plugin/configs/models/ogm_ge.yaml``.
"""

import math

import torch
import torch.distributed as dist

from .distributed import world_size
from .hooks import Step, TrainingHook, register_hook


def discrepancy_scores(
    unimodal_logits: dict[str, torch.Tensor],
    targets: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """``s_m = Σ_i softmax(logits_m)_i[y_i]`` (detached, 0-d float tensor per modality).

    ``mask`` (Bool [B, M], columns in the order of ``unimodal_logits``) restricts the sum of
    modality m to the samples where m is present.
    """
    scores = {}
    for j, (m, logits) in enumerate(unimodal_logits.items()):
        p = torch.softmax(logits.detach().float(), dim=1).gather(1, targets.view(-1, 1)).squeeze(1)
        if mask is not None:
            p = p * mask[:, j].to(p.dtype)
        scores[m] = p.sum()
    return scores


def _ratio(num: float, den: float) -> float:
    if den > 0:
        return num / den
    return math.inf if num > 0 else 0.0


def modulation_coefficients(
    scores: dict[str, torch.Tensor], *, alpha: float, extension: str
) -> dict[str, float]:
    """Coefficients k_m in (0, 1]; k = 1 - tanh(α·ρ) for a suppressed modality, else 1.

    Two modalities: ρ_a = s_a / s_v, ρ_v = 1/ρ_a; the one with ρ > 1 is suppressed (both
    extensions agree).  More modalities (not in the paper):

    * ``"others_sum"`` (MLA code): ρ_m = s_m / Σ_{n≠m} s_n; the modality with the largest
      ρ > 1 is suppressed (with non-negative scores at most one can exceed 1); if none
      exceeds 1, nobody is.  The MLA code instead checks v, then t, and otherwise always
      suppresses a, even when ρ_a <= 1 -- that quirk is deliberately not reproduced.
    * ``"mean_others"``: ρ_m = s_m / mean_{n≠m} s_n; every modality with ρ > 1 is suppressed.
    """
    mods = list(scores)
    if len(mods) < 2:
        return {m: 1.0 for m in mods}
    ratios = score_ratios(scores, extension=extension)
    if extension == "others_sum":
        dominant = max(mods, key=lambda m: ratios[m])
        chosen = [dominant] if ratios[dominant] > 1 else []
    else:
        chosen = [m for m in mods if ratios[m] > 1]
    return {m: (1.0 - math.tanh(alpha * ratios[m]) if m in chosen else 1.0) for m in mods}


EXTENSIONS = ("others_sum", "mean_others")


def score_ratios(scores: dict[str, torch.Tensor], *, extension: str) -> dict[str, float]:
    """ρ_m: each modality's score over the others' (two modalities: ρ_a = s_a / s_v, both
    extensions agree); ``others_sum`` divides by the others' sum, ``mean_others`` by
    their mean.  A zero denominator gives inf (or 0 when the numerator is 0 too).  Shared
    by OGM(-GE), OPM and PMR."""
    s = {m: float(v) for m, v in scores.items()}
    mods = list(s)
    if extension not in EXTENSIONS:
        raise ValueError(f"unknown OGM-GE extension {extension!r}")
    div = 1 if extension == "others_sum" else max(len(mods) - 1, 1)
    return {m: _ratio(s[m], sum(s[n] for n in mods if n != m) / div) for m in mods}


@register_hook("ogm_ge", model_hook=True)
class OGMGEHook(TrainingHook):
    """Scale (and, with GE, perturb) each encoder's gradients between backward and step.

    * ``step.epoch`` is 1-based; with ``epoch0 = step.epoch - 1`` modulation runs when
      ``start_epoch <= epoch0 <= end_epoch`` (the reference code's 0-based, inclusive window).
    * ``params="all"``: every encoder parameter with a gradient; ``"conv_only"``: only 4-D
      parameters (conv weights), as in the reference code.
    * GE noise: ``ge_scope="modulated"`` adds N(0, (std(g)+1e-8)²) only to the parameters
      of modalities with k < 1; ``"all"`` adds it to every selected parameter of every
      encoder, which is what the reference code does (its k = 1 branch adds noise too).
    * The noise comes from generators owned by the hook (one per device, seeded with
      ``seed``), saved in ``state_dict`` so a resumed run draws the same noise.  Under DDP every
      rank uses the same seed, so the (already all-reduced) gradients get identical noise, and
      the scores are all-reduced (``sync_scores``) so every rank computes the same k.
    * ``self.last_coefficients`` holds the last k per modality (empty outside the window).
    * No defaults for the switches (only ``sync_scores``, a DDP detail, has one): the
      OGM-GE model's are the ``ogm_*`` keys of ``mla_plugin/configs/models/ogm_ge.yaml``.
    """

    def __init__(
        self,
        encoders: dict[str, torch.nn.Module],
        *,
        alpha: float,
        start_epoch: int,
        end_epoch: int,
        params: str,
        ge: bool,
        seed: int,
        extension: str,
        ge_scope: str,
        sync_scores: bool = True,
    ):
        if params not in ("all", "conv_only"):
            raise ValueError(f"params must be 'all' or 'conv_only', got {params!r}")
        if ge_scope not in ("modulated", "all"):
            raise ValueError(f"ge_scope must be 'modulated' or 'all', got {ge_scope!r}")
        self.encoders = encoders
        self.alpha, self.start_epoch, self.end_epoch = alpha, start_epoch, end_epoch
        self.params, self.ge, self.ge_scope = params, ge, ge_scope
        self.extension, self.sync_scores, self.seed = extension, sync_scores, seed
        self._generators: dict[str, torch.Generator] = {}
        self.last_coefficients: dict[str, float] = {}

    def _generator(self, device: torch.device) -> torch.Generator:
        key = str(device)
        if key not in self._generators:
            g = torch.Generator(device=device)
            g.manual_seed(self.seed)
            self._generators[key] = g
        return self._generators[key]

    def active(self, epoch: int) -> bool:
        return self.start_epoch <= epoch - 1 <= self.end_epoch

    def on_before_optimizer_step(self, step: Step) -> None:
        self.last_coefficients = {}
        if not self.active(step.epoch):
            return
        scores = discrepancy_scores(
            step.outputs["modality_scores"], step.batch["targets"], step.mask
        )
        if self.sync_scores:
            scores = all_reduce_scores(scores)
        coeffs = modulation_coefficients(scores, alpha=self.alpha, extension=self.extension)
        self.last_coefficients = coeffs
        for m, encoder in self.encoders.items():
            k = coeffs.get(m, 1.0)
            noisy = self.ge and (k < 1.0 or self.ge_scope == "all")
            if k == 1.0 and not noisy:
                continue
            for p in encoder.parameters():
                if p.grad is None or (self.params == "conv_only" and p.grad.dim() != 4):
                    continue
                g = p.grad
                if noisy:
                    std = (g.float().std().item() if g.numel() > 1 else 0.0) + 1e-8
                    noise = (
                        torch.randn(
                            g.shape,
                            generator=self._generator(g.device),
                            device=g.device,
                            dtype=g.dtype,
                        )
                        * std
                    )
                    p.grad = g * k + noise
                else:
                    g.mul_(k)

    def state_dict(self) -> dict:
        return {
            "seed": self.seed,
            "generators": {d: g.get_state() for d, g in self._generators.items()},
        }

    def load_state_dict(self, state: dict) -> None:
        self.seed = state.get("seed", self.seed)
        self._generators = {}
        for d, s in state.get("generators", {}).items():
            self._generator(torch.device(d)).set_state(s)


def all_reduce_scores(scores: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Sum the batch scores over DDP ranks (no-op without an initialised process group)."""
    if world_size() == 1:
        return scores
    mods = list(scores)
    t = torch.stack([scores[m] for m in mods])
    dist.all_reduce(t)
    return {m: t[i] for i, m in enumerate(mods)}
