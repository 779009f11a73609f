"""``avdigits``: spoken digits (FSDD recordings) paired by label with handwritten digits
(scikit-learn's bundled ``load_digits``); see :mod:`mla_plugin.data.avdigits`.

``audio_norm: [mean, std]`` standardises the (unnormalised) fbank of present samples,
``(x - mean) / std`` (:class:`~mla_plugin.data.standardize.Standardized`); absent
(zero-filled) inputs stay zero. The default is the train split's statistics at the default
fbank size (40 mel bins x 100 frames, data seed 0).
Without it the raw log-mel values (about -16..6) make SGD on the audio MLP unstable under
MLA's per-modality steps (audio at chance for some training seeds).
"""

from mmf.common.registry import registry

from mla_plugin.builders.auto import DataDrivenBuilder, as_list, resolve_path
from mla_plugin.data.avdigits import AVDigitsDataset, default_cache_dir
from mla_plugin.data.fsdd import default_fsdd_dir
from mla_plugin.data.standardize import Standardized


@registry.register_builder("avdigits")
class AVDigitsBuilder(DataDrivenBuilder):
    NAME = "avdigits"

    def __init__(self):
        super().__init__(self.NAME)

    def make_reader(self, config, dataset_type):
        reader = AVDigitsDataset(
            dataset_type,
            fsdd_dir=resolve_path(config.fsdd_dir) or default_fsdd_dir(),
            cache_dir=resolve_path(config.cache_dir) or default_cache_dir(),
            seed=int(config.seed),
            val_fraction=float(config.val_fraction),
            audio_mel_bins=int(config.audio_mel_bins),
            audio_frames=int(config.audio_frames),
            missing_rate=float(config.missing_rate),
            mask_scheme=config.mask_scheme,
            max_per_class=config.max_per_class,
        )
        norm = as_list(config.audio_norm)
        if norm:
            if len(norm) != 2:
                raise ValueError(
                    f"dataset_config.avdigits.audio_norm must be [mean, std] or null, got {norm}"
                )
            reader = Standardized(reader, {"audio": norm})
        return reader
