"""Greedy: balanced multimodal learning by conditional learning speed (Wu, Jastrzębski,
Cho, Geras, ICML 2022, Sec. 3-4 and Algorithm 1).

* **MMTM block** (the paper's cross-modal connection): squeeze every modality's feature
  into one vector, z = ReLU(W_s [h_1; ...; h_M]), then one gate per modality
  g_m = 2·σ(W_m z) that multiplies h_m (MMTM's factor 2: a gate starts near 1, so the
  block starts close to the identity).  A gate is the modality's path to the others'
  information.  Each gate's running average over training is kept.
* **Conditional learning speed** (Eq. 3-4): accumulated over all steps since the start,
  bypass_m = Σ |∇W|²/|W|² over the block's parameters that feed modality m (the shared
  squeeze and m's gate) and main_m = the same over m's own encoder; the conditional
  utilisation rate gap BDR_m = log10(bypass_m / main_m).
* **Re-balancing step** (Algorithm 1): after a backward, when not already re-balancing,
  if d = max_m BDR_m - min_m BDR_m > ε, the next Q steps are re-balancing steps for the
  modality c with the largest BDR (two modalities: c = 0 when BDR_0 - BDR_1 > ε, c = 1
  when it is < -ε): c's gate is replaced by its running average, a constant, so c's branch
  must learn from its own input.
"""

import math
from collections.abc import Sequence

import torch
from torch import nn


class MMTM(nn.Module):
    """One MMTM block on encoder outputs [B, d] (``ratio``: the squeeze's reduction).
    Buffers ``gate_mean`` [M, d] and ``gate_steps``: the running (cumulative) mean of each
    modality's batch-mean gate over the training forwards that use data gates."""

    def __init__(self, modalities: Sequence[str], dim: int, ratio: float):
        super().__init__()
        self.modalities = list(modalities)
        hidden = max(1, int(len(self.modalities) * dim / ratio))
        self.squeeze = nn.Linear(len(self.modalities) * dim, hidden)
        self.excite = nn.ModuleDict({m: nn.Linear(hidden, dim) for m in self.modalities})
        self.register_buffer("gate_mean", torch.zeros(len(self.modalities), dim))
        self.register_buffer("gate_steps", torch.zeros((), dtype=torch.long))

    def forward(self, features: dict[str, torch.Tensor], constant: str | None = None):
        """Gated features; ``constant``: the modality whose gate is its running average."""
        z = torch.relu(self.squeeze(torch.cat([features[m] for m in self.modalities], dim=1)))
        gates = {m: 2 * torch.sigmoid(self.excite[m](z)) for m in self.modalities}
        if constant is not None:
            j = self.modalities.index(constant)
            gates[constant] = self.gate_mean[j].to(z.dtype).expand_as(gates[constant])
        elif self.training:
            with torch.no_grad():
                batch = torch.stack([gates[m].float().mean(dim=0) for m in self.modalities])
                self.gate_steps += 1
                self.gate_mean += (batch - self.gate_mean) / self.gate_steps
        return {m: features[m] * gates[m] for m in self.modalities}

    def bypass_parameters(self, modality: str) -> list[nn.Parameter]:
        """The block's parameters on modality m's cross-modal path: squeeze and m's gate."""
        return list(self.squeeze.parameters()) + list(self.excite[modality].parameters())


def learning_speeds(groups: dict[str, Sequence[nn.Parameter]]) -> dict[str, float]:
    """Σ |∇W|²/|W|² per group (parameters without a gradient or with |W| = 0 skipped), with
    one device-to-host copy for all groups."""
    names, values = [], []
    for name, params in groups.items():
        ps = [p for p in params if p.grad is not None]
        if not ps:
            names.append(name)
            values.append(torch.zeros(()))
            continue
        g = torch.stack([p.grad.detach().float().pow(2).sum() for p in ps])
        w = torch.stack([p.detach().float().pow(2).sum() for p in ps])
        ratio = torch.where(w > 0, g / w.clamp(min=1e-30), torch.zeros_like(g))
        names.append(name)
        values.append(ratio.sum())
    device = next((v.device for v in values if v.device.type != "cpu"), torch.device("cpu"))
    flat = torch.stack([v.to(device) for v in values]).tolist()
    return dict(zip(names, flat, strict=True))


class ConditionalSpeed:
    """Accumulated bypass/main speeds and the re-balancing window (Algorithm 1).

    ``after_step(bypass, main, epoch0)`` after each backward (``epoch0`` 0-based): adds the
    speeds; inside a window, counts one re-balancing step down; outside one, from
    ``start_epoch`` on, opens a window of ``window`` steps for the modality with the largest
    BDR when the BDR spread exceeds ``threshold``.  ``caring``: that modality while a
    window is open, else None."""

    def __init__(self, modalities, *, threshold: float, window: int, start_epoch: int):
        self.modalities = list(modalities)
        self.threshold, self.window, self.start_epoch = threshold, window, start_epoch
        self.bypass = {m: 0.0 for m in self.modalities}
        self.main = {m: 0.0 for m in self.modalities}
        self.left = 0
        self.caring: str | None = None

    def bdr(self) -> dict[str, float]:
        """log10(bypass_m / main_m); {} until every speed is positive."""
        if any(self.bypass[m] <= 0 or self.main[m] <= 0 for m in self.modalities):
            return {}
        return {m: math.log10(self.bypass[m] / self.main[m]) for m in self.modalities}

    def after_step(self, bypass: dict[str, float], main: dict[str, float], epoch0: int) -> None:
        for m in self.modalities:
            self.bypass[m] += bypass[m]
            self.main[m] += main[m]
        if self.left > 0:
            self.left -= 1
            if self.left == 0:
                self.caring = None
            return
        bdr = self.bdr()
        if epoch0 < self.start_epoch or not bdr:
            return
        if self.window > 0 and max(bdr.values()) - min(bdr.values()) > self.threshold:
            self.caring = max(self.modalities, key=lambda m: bdr[m])
            self.left = self.window

    def state_dict(self) -> dict:
        return {
            "bypass": dict(self.bypass),
            "main": dict(self.main),
            "left": self.left,
            "caring": self.caring,
        }

    def load_state_dict(self, state: dict) -> None:
        self.bypass, self.main = dict(state["bypass"]), dict(state["main"])
        self.left, self.caring = int(state["left"]), state["caring"]
