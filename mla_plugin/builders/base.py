"""Glue between the framework-free readers of :mod:`mla_plugin.data` and MMF.

A reader (:class:`~mla_plugin.data.reader.Reader`) returns
``{"inputs": {modality: tensor}, "mask", "targets", "index"}``; :class:`MultimodalDataset`
turns that into MMF's :class:`~mmf.common.sample.Sample`, and :class:`MultimodalBuilder` is
the small MMF builder every dataset here shares.
"""

import os

import torch
from mmf.common.sample import Sample
from mmf.datasets.base_dataset import BaseDataset
from mmf.datasets.base_dataset_builder import BaseDatasetBuilder

from mla_plugin.data.missing import TrainMasked, check_train_mask
from mla_plugin.data.reader import BatchReader, Reader
from mla_plugin.data.validation import check_modality_names

CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "configs", "datasets")


class MultimodalDataset(BaseDataset):
    """An MMF dataset of Samples with one field per modality, ``mask``, ``targets`` and
    ``index`` (the sample's position in its split, for QMF's per-sample history)."""

    def __init__(self, dataset_name, config, dataset_type, reader: Reader):
        super().__init__(dataset_name, config, dataset_type)
        self.reader = reader
        self.modalities = list(reader.modalities)
        self.num_classes = reader.num_classes

    def __len__(self):
        return len(self.reader)

    def _fields(self, idx):
        item = self.reader[idx]
        return {
            **item["inputs"],
            "mask": item["mask"],
            "targets": item["targets"],
            "index": item["index"],
        }

    @staticmethod
    def _sample(fields):
        """A Sample holding ``fields`` (one entry per field)."""
        sample = Sample()
        for k, v in fields.items():
            sample[k] = v
        return sample

    def __getitem__(self, idx):
        return self._sample(self._fields(idx))

    def __getitems__(self, indices):
        """A whole batch at once: PyTorch's DataLoader calls this in place of
        ``__getitem__`` per index and hands the result to the collate function.  It
        returns one mapping of stacked fields, which MMF's ``BatchCollator`` (the
        collate function of every loader here) turns into the same SampleList as a list
        of Samples would give, without building and copying Samples one by one (that
        cost more than a small model's training step: docs/benchmarks.md).  A reader
        with ``get_batch(indices)`` (in-memory tensors) gives the stacked fields
        directly; otherwise items are stacked here, or, when a field is not a tensor or
        differs in shape, returned as the usual list of Samples."""
        if isinstance(self.reader, BatchReader):
            batch = self.reader.get_batch(indices)
            return {
                **batch["inputs"],
                "mask": batch["mask"],
                "targets": batch["targets"],
                "index": batch["index"],
            }
        items = [self._fields(i) for i in indices]
        first = items[0]
        if all(isinstance(v, torch.Tensor) for v in first.values()) and all(
            item.keys() == first.keys() and all(item[k].shape == v.shape for k, v in first.items())
            for item in items
        ):
            return {k: torch.stack([item[k] for item in items]) for k in first}
        return [self._sample(item) for item in items]


class MultimodalBuilder(BaseDatasetBuilder):
    """Builds a :class:`MultimodalDataset` around ``make_reader(config, split)``."""

    def make_reader(self, config, dataset_type) -> Reader:
        raise NotImplementedError

    @classmethod
    def config_path(cls):
        return os.path.join(CONFIG_DIR, f"{cls.NAME}.yaml")

    def build(self, config, dataset_type="train", *args, **kwargs):
        pass  # nothing to download: data is read from where the config points

    def load(self, config, dataset_type="train", *args, **kwargs):
        reader = self.make_reader(config, dataset_type)
        where = f"dataset_config.{self.dataset_name}.modalities"
        if config.get("modalities") is None:  # the reader's own (e.g. a features file's)
            where += f" (null: the data's, {getattr(reader, 'source_file', 'as read')})"
        check_modality_names(list(reader.modalities), where)
        # Figure 2's isolation experiment: modalities masked in a fraction of the TRAIN
        # samples only (checked on every split, so a bad key fails whichever loads first)
        where = f"dataset_config.{self.dataset_name}.train_mask"
        train_mask = check_train_mask(config.train_mask, reader.modalities, where)
        if dataset_type == "train" and any(train_mask.values()):
            reader = TrainMasked(reader, train_mask, int(config.seed), where)
        return MultimodalDataset(self.dataset_name, config, dataset_type, reader)
