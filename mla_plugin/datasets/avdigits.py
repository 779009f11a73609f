"""``avdigits``: spoken digits (FSDD recordings) paired by label with handwritten digits
(scikit-learn's bundled ``load_digits``); see :mod:`mla_plugin.data.avdigits`."""
from mmf.common.registry import registry

from mla_plugin.data.avdigits import AVDigitsDataset
from mla_plugin.datasets.auto import (DataDrivenBuilder, default_cache_path, default_data_path,
                                      resolve_path)


@registry.register_builder("avdigits")
class AVDigitsBuilder(DataDrivenBuilder):
    NAME = "avdigits"

    def __init__(self):
        super().__init__(self.NAME)

    def make_core(self, config, dataset_type):
        return AVDigitsDataset(
            dataset_type,
            fsdd_dir=resolve_path(config.get("fsdd_dir")) or default_data_path("MLA_FSDD_DIR", "shared", "data", "fsdd"),
            cache_dir=resolve_path(config.get("cache_dir")) or default_cache_path("avdigits"),
            seed=int(config.get("seed", 0)),
            val_fraction=float(config.get("val_fraction", 0.1)),
            audio_mel_bins=int(config.get("audio_mel_bins", 40)),
            audio_frames=int(config.get("audio_frames", 100)),
            missing_rate=float(config.get("missing_rate", 0.0)),
            mask_scheme=config.get("mask_scheme", "cpm_atleast1"),
            max_per_class=config.get("max_per_class"),
        )
