"""Per-modality feature scaling for the ``features`` builder: ``none``, ``standard`` or ``l2``.

- ``standard``: ``(x - mean) / std`` per feature (per element of ``x_<modality>``), with
  ``mean`` and ``std`` computed on the **train split only**, over the samples where the
  modality is present (absent, zero-filled cells neither enter the statistics nor are
  changed).  A feature whose train std is below :data:`STD_FLOOR` (e.g. constant) is only
  centred (its std is taken as 1), so it never divides by ~0 on val or test.
- ``l2``: each present sample's features divided by their L2 norm (at least
  :data:`STD_FLOOR`); needs no statistics.
- ``none``: the raw values.

The spec is one mode for every modality (``standard``) or a mapping ``{modality: mode}``
(modalities it does not name get ``none``); see :func:`parse_normalize`.  Nothing here
imports MMF.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

MODES = ("none", "standard", "l2")
STD_FLOOR = 1e-6


def parse_normalize(spec, modalities: Sequence[str], key: str) -> dict[str, str]:
    """``{modality: mode}`` from a config value: a mode name for every modality, or a
    mapping naming some modalities (the others: ``none``), also written
    ``"audio:l2,text:none"``.  ``key`` names the config key
    in errors."""
    if isinstance(spec, str) and ":" in spec:  # "audio:l2,text:none" (a command line)
        spec = dict(part.split(":", 1) for part in spec.replace(" ", "").split(",") if part)
    if isinstance(spec, str) or spec is None:
        mode = "none" if spec is None else str(spec)
        if mode not in MODES:
            raise ValueError(
                f"{key}: expected one of {list(MODES)} or {{modality: mode}}, got {spec!r}"
            )
        return {m: mode for m in modalities}
    if not isinstance(spec, Mapping) and not hasattr(spec, "items"):
        raise ValueError(
            f"{key}: expected one of {list(MODES)} or {{modality: mode}}, got {spec!r}"
        )
    out = {m: "none" for m in modalities}
    for m, mode in dict(spec.items()).items():
        if m not in out:
            raise ValueError(f"{key}: unknown modality {m!r}; the data has {list(modalities)}")
        if mode not in MODES:
            raise ValueError(f"{key}.{m}: expected one of {list(MODES)}, got {mode!r}")
        out[m] = str(mode)
    return out


def fit_stats(reader, modes: Mapping[str, str]) -> dict[str, np.ndarray]:
    """Train statistics ``{"<m>_mean", "<m>_std"}`` (float32, the feature shape) of the
    modalities in ``standard`` mode, over the samples where each is present."""
    stats = {}
    for j, m in enumerate(reader.modalities):
        if modes[m] != "standard":
            continue
        x = reader.features[m][reader.mask[:, j]].double().numpy()
        if x.shape[0] == 0:
            raise ValueError(f"normalize: modality {m!r} is absent from every train sample")
        std = x.std(axis=0)
        stats[f"{m}_mean"] = x.mean(axis=0).astype(np.float32)
        stats[f"{m}_std"] = np.where(std < STD_FLOOR, 1.0, std).astype(np.float32)
    return stats


def apply(reader, modes: Mapping[str, str], stats: Mapping[str, np.ndarray]) -> None:
    """Scale ``reader.features`` in place where each modality is present."""
    for j, m in enumerate(reader.modalities):
        if modes[m] == "none":
            continue
        x, present = reader.features[m], reader.mask[:, j]
        if modes[m] == "standard":
            mean = torch.from_numpy(np.asarray(stats[f"{m}_mean"], dtype=np.float32))
            std = torch.from_numpy(np.asarray(stats[f"{m}_std"], dtype=np.float32))
            y = (x - mean) / std
        else:
            norm = x.reshape(x.shape[0], -1).norm(dim=1).clamp_min(STD_FLOOR)
            y = x / norm.reshape((-1,) + (1,) * (x.dim() - 1))
        shape = (-1,) + (1,) * (x.dim() - 1)
        reader.features[m] = torch.where(present.reshape(shape), y, torch.zeros_like(x))
