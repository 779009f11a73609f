"""The ``features`` builder's ``normalize`` setting (:mod:`mla_plugin.data.normalize`), wired
to the run: the train split's statistics are applied to every split, and saved beside
the run's records as ``<env.save_dir>/feature_stats.npz`` (``<m>_mean`` / ``<m>_std`` per
``standard`` modality, and ``modes``: one ``m=mode`` entry per modality)."""

import os

import numpy as np
from mmf.common.registry import registry

from mla_plugin.data import normalize as norm
from mla_plugin.utils.io import atomic_savez

STATS_FILE = "feature_stats.npz"
_KEY = "dataset_config.features.normalize"


def normalize_reader(reader, spec, read_split, split: str) -> dict:
    """Scale ``reader`` (a FeaturesDataset of ``split``) in place by ``spec``; statistics
    from ``read_split("train")`` (the reader itself when it is the train split).  Returns
    the statistics."""
    modes = norm.parse_normalize(spec, reader.modalities, _KEY)
    if all(m == "none" for m in modes.values()):
        return {}
    # val/test: the train split read again with the same settings (no in-process memo,
    # whose key could miss a setting the statistics depend on)
    stats = norm.fit_stats(reader if split == "train" else read_split("train"), modes)
    norm.apply(reader, modes, stats)
    reader.normalization = {"modes": modes, "stats": stats}
    if split == "train":
        _save(modes, stats)
    return stats


def _save(modes, stats) -> None:
    config = registry.get("config", no_warning=True)
    save_dir = config.get("env", {}).get("save_dir") if config is not None else None
    if not save_dir:
        return
    os.makedirs(save_dir, exist_ok=True)
    atomic_savez(
        os.path.join(save_dir, STATS_FILE),
        modes=np.array([f"{m}={mode}" for m, mode in modes.items()], dtype=str),
        **stats,
    )
