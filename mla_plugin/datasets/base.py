"""Glue between the framework-free datasets of :mod:`mla_plugin.data` and MMF.

A core dataset returns ``{"inputs": {modality: tensor}, "mask", "targets", "index"}``;
:class:`MultimodalDataset` turns that into MMF's :class:`~mmf.common.sample.Sample`, and
:class:`MultimodalBuilder` is the small MMF builder every dataset here shares.
"""
import os

from mmf.common.sample import Sample
from mmf.datasets.base_dataset import BaseDataset
from mmf.datasets.base_dataset_builder import BaseDatasetBuilder

CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "configs", "datasets")


class MultimodalDataset(BaseDataset):
    """An MMF dataset of Samples with one field per modality, ``mask``, ``targets`` and
    ``index`` (the sample's position in its split, for QMF's per-sample history)."""

    def __init__(self, dataset_name, config, dataset_type, core):
        super().__init__(dataset_name, config, dataset_type)
        self.core = core
        self.modalities = list(core.modalities)
        self.num_classes = core.num_classes

    def __len__(self):
        return len(self.core)

    def __getitem__(self, idx):
        item = self.core[idx]
        sample = Sample()
        for m, x in item["inputs"].items():
            sample[m] = x
        sample.mask = item["mask"]
        sample.targets = item["targets"]
        sample.index = item["index"]
        return sample


class MultimodalBuilder(BaseDatasetBuilder):
    """Builds a :class:`MultimodalDataset` around ``make_core(config, split)``."""

    def make_core(self, config, dataset_type):
        raise NotImplementedError

    @classmethod
    def config_path(cls):
        return os.path.join(CONFIG_DIR, f"{cls.NAME}.yaml")

    def build(self, config, dataset_type="train", *args, **kwargs):
        pass  # nothing to download: data is read from where the config points

    def load(self, config, dataset_type="train", *args, **kwargs):
        return MultimodalDataset(self.dataset_name, config, dataset_type,
                                 self.make_core(config, dataset_type))
