"""MMF's own datasets (those of MMF's builders, e.g. ``hateful_memes``) in the plugin's
trainer.

The trainer reads ``targets``, ``index`` (the sample's position in its split) and
``mask`` (per-modality presence) from every batch; MMF's datasets give ``targets`` and
their own fields (``input_ids``/``input_mask``/``segment_ids`` from the ``bert_tokenizer``
processor, ``image`` from the image processors, ``id``, ...).  :class:`MMFSamples` adds
``index`` and an all-present ``mask``; which fields feed which modality's encoder is the
encoder config's ``fields`` (:func:`mla_plugin.core.encoders.build_encoder`).
"""

import torch
from torch.utils.data import Dataset


def is_mmf_dataset(dataset) -> bool:
    """Whether ``dataset`` comes from one of MMF's builders rather than the plugin's
    (whose samples already carry ``mask`` and ``index``)."""
    from mla_plugin.builders.base import MultimodalDataset

    return not isinstance(dataset, (MultimodalDataset, MMFSamples))


class MMFSamples(Dataset):
    """``dataset``'s samples plus ``index`` and ``mask`` (``num_modalities`` ones: MMF's
    datasets have no missing modalities)."""

    def __init__(self, dataset, num_modalities: int):
        self.dataset = dataset
        self.num_modalities = int(num_modalities)
        self.dataset_name = dataset.dataset_name
        self.dataset_type = dataset.dataset_type

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, idx):
        sample = self.dataset[idx]
        sample.index = torch.tensor(idx, dtype=torch.long)
        sample.mask = torch.ones(self.num_modalities, dtype=torch.bool)
        return sample

    def __getattr__(self, name):  # the wrapped dataset's own attributes (processors, ...)
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)


def adapt_for_trainer(dataset, config):
    """``dataset`` as the trainer reads it: MMF's own wrapped in :class:`MMFSamples`
    (a mask over the model's ``modalities``), the plugin's unchanged."""
    if not is_mmf_dataset(dataset):
        return dataset
    modalities = config.model_config[config.model].get("modalities") or []
    return MMFSamples(dataset, len(modalities))
