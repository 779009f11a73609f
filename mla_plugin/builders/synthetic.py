"""``synthetic``: a dominant and a weak feature modality, for tests and quick demos."""

from mmf.common.registry import registry

from mla_plugin.builders.base import MultimodalBuilder
from mla_plugin.data.synthetic import SyntheticDataset


@registry.register_builder("synthetic")
class SyntheticBuilder(MultimodalBuilder):
    NAME = "synthetic"

    def __init__(self):
        super().__init__(self.NAME)

    def make_reader(self, config, dataset_type):
        return SyntheticDataset(
            dataset_type,
            modalities=list(config.modalities),
            signal=list(config.signal),
            dim=config.dim,
            num_classes=config.num_classes,
            sizes=dict(config.sizes),
            seed=config.seed,
            missing_rate=config.missing_rate,
            mask_scheme=config.mask_scheme,
        )
