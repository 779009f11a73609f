"""``features``: a directory of pre-extracted features (``train.npz``, optional ``val.npz``,
``test.npz``; see :mod:`mla_plugin.data.features`).

Modalities, class count and feature sizes come from the files: with the experiment
config's ``multimodal.modalities: null``, ``num_classes: null`` and an encoder template
``multimodal.encoders.default`` whose ``in_dim`` is ``auto``, the builder fills them in before
the model is built (:mod:`mla_plugin.builders.auto`).

``normalize: none | standard | l2`` (or ``{modality: mode}``) scales each modality with
statistics of the train split only, saved as ``feature_stats.npz`` in the run's save_dir
(:mod:`mla_plugin.builders.normalize`).
"""

from mmf.common.registry import registry

from mla_plugin.builders.auto import DataDrivenBuilder, as_list, resolve_path
from mla_plugin.builders.normalize import normalize_reader
from mla_plugin.data.errors import DataError
from mla_plugin.data.features import FeaturesDataset


@registry.register_builder("features")
class FeaturesBuilder(DataDrivenBuilder):
    NAME = "features"
    OPEN_KEYS = ("normalize",)  # a mode or {modality: mode} (config_validation)

    def __init__(self):
        super().__init__(self.NAME)

    def make_reader(self, config, dataset_type):
        data_dir = resolve_path(config.data_dir)
        if data_dir is None:
            raise DataError(
                "features: no data directory given; pass dataset_config.features.data_dir=/path "
                "to a folder with train.npz, test.npz and optionally val.npz (see docs/datasets.md)"
            )

        def read(split):
            return FeaturesDataset(
                data_dir,
                split,
                modalities=as_list(config.modalities),
                missing_rate=float(config.missing_rate),
                mask_scheme=config.mask_scheme,
                seed=int(config.seed),
                val_fraction=float(config.val_fraction),
                on_bad_sample=config.on_bad_sample,
            )

        reader = read(dataset_type)
        normalize_reader(reader, config.normalize, read, dataset_type)
        return reader
