"""``avdigits``: spoken digits (FSDD recordings) paired by label with handwritten digits
(scikit-learn's bundled ``load_digits``); see :mod:`mla_plugin.data.avdigits`.

``audio_norm: [mean, std]`` standardises the (unnormalised) fbank of present samples,
``(x - mean) / std``; absent (zero-filled) inputs stay zero. The default is the train
split's statistics at the default fbank size (40 mel bins x 100 frames, data seed 0).
Without it the raw log-mel values (about -16..6) make SGD on the audio MLP unstable under
MLA's per-modality steps (audio at chance for some training seeds).
"""
import torch
from mmf.common.registry import registry

from mla_plugin.data.avdigits import AVDigitsDataset, default_cache_dir, default_fsdd_dir
from mla_plugin.builders.auto import DataDrivenBuilder, as_list, resolve_path


class Standardized:
    """A core dataset whose listed modalities are standardised where present.

    Only the core-dataset interface is exposed (``modalities``, ``num_classes``,
    ``class_names``, ``feature_shapes``, items and ``get_batch``), never the core's raw
    tensors, so no access path can bypass the normalisation."""

    def __init__(self, core, norms):
        self.core = core
        self.modalities = list(core.modalities)
        self.num_classes = core.num_classes
        self.class_names = list(getattr(core, "class_names", []))
        self.feature_shapes = dict(getattr(core, "feature_shapes", {}))
        self.norms = {m: (float(mean), float(std)) for m, (mean, std) in norms.items()}
        for m, (_, std) in self.norms.items():
            if m not in self.modalities:
                raise ValueError(f"avdigits: normalisation for unknown modality {m!r}")
            if std <= 0:
                raise ValueError(f"avdigits: normalisation std for {m!r} must be > 0, got {std}")
        # A core with get_batch holds its split in memory: standardise it once, here.
        fetch = getattr(core, "get_batch", None)
        self._split = self._standardise(fetch(range(len(core)))) if fetch is not None else None

    def __len__(self):
        return len(self.core)

    def _standardise(self, item):
        inputs = dict(item["inputs"])
        for m, (mean, std) in self.norms.items():
            x, present = inputs[m], item["mask"][..., self.modalities.index(m)]
            present = present.reshape(present.shape + (1,) * (x.dim() - present.dim()))
            inputs[m] = torch.where(present, (x - mean) / std, x)
        return {**item, "inputs": inputs}

    def __getitem__(self, i):
        return self._standardise(self.core[i])

    def get_batch(self, indices):
        """Stacked items (``[B, ...]``).  From an in-memory core they are indexed out of
        the split standardised once at construction (standardising every batch cost
        about 15 % of an avdigits run, docs/benchmarks.md)."""
        if self._split is not None:
            i = torch.as_tensor(list(indices), dtype=torch.long)
            return {"inputs": {m: x[i] for m, x in self._split["inputs"].items()},
                    **{k: self._split[k][i] for k in ("mask", "targets", "index")}}
        items = [self.core[i] for i in indices]
        batch = {k: torch.stack([it[k] for it in items]) for k in ("mask", "targets", "index")}
        batch["inputs"] = {m: torch.stack([it["inputs"][m] for it in items]) for m in self.modalities}
        return self._standardise(batch)


@registry.register_builder("avdigits")
class AVDigitsBuilder(DataDrivenBuilder):
    NAME = "avdigits"

    def __init__(self):
        super().__init__(self.NAME)

    def make_core(self, config, dataset_type):
        core = AVDigitsDataset(
            dataset_type,
            fsdd_dir=resolve_path(config.get("fsdd_dir")) or default_fsdd_dir(),
            cache_dir=resolve_path(config.get("cache_dir")) or default_cache_dir(),
            seed=int(config.get("seed", 0)),
            val_fraction=float(config.get("val_fraction", 0.1)),
            audio_mel_bins=int(config.get("audio_mel_bins", 40)),
            audio_frames=int(config.get("audio_frames", 100)),
            missing_rate=float(config.get("missing_rate", 0.0)),
            mask_scheme=config.get("mask_scheme", "cpm_atleast1"),
            max_per_class=config.get("max_per_class"),
        )
        norm = as_list(config.get("audio_norm"))
        if norm:
            if len(norm) != 2:
                raise ValueError(f"dataset_config.avdigits.audio_norm must be [mean, std] or null, got {norm}")
            core = Standardized(core, {"audio": norm})
        return core
