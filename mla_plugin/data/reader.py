"""What a reader is: the interface every framework-free dataset of :mod:`mla_plugin.data`
offers, and which the MMF builders (:mod:`mla_plugin.builders`) wrap.

A :class:`Reader` serves one split: ``len(reader)`` samples, each
``{"inputs": {modality: tensor}, "mask", "targets", "index"}`` (:class:`Item`).  Two
optional extras are checked at run time (``isinstance``):

- :class:`BatchReader`: ``get_batch(indices)`` gives the stacked items ``[B, ...]`` at once
  (readers holding their split in memory);
- :class:`HasFeatureShapes` / :class:`HasClassNames`: the per-sample shape of each modality
  (``{modality: shape}``) and the class names, which the builders use to fill the model's
  settings from the data (:mod:`mla_plugin.builders.auto`).

Nothing here imports MMF.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypedDict, runtime_checkable

import torch
from torch.utils.data import Dataset


class Item(TypedDict):
    """One sample (or, from :meth:`BatchReader.get_batch`, a batch: every tensor ``[B, ...]``)."""

    inputs: dict[str, torch.Tensor]  # one tensor per modality; zeros where absent
    mask: torch.Tensor  # bool [num_modalities]: which modalities are present
    targets: torch.Tensor  # long []: the class
    index: torch.Tensor  # long []: the sample's position in its split


class Reader(Protocol):
    """One split of a dataset, framework-free."""

    modalities: list[str]
    num_classes: int

    def __len__(self) -> int: ...

    def __getitem__(self, i: int) -> Item: ...


@runtime_checkable
class BatchReader(Protocol):
    """A reader that gives a whole batch of stacked items at once."""

    def get_batch(self, indices: Sequence[int]) -> Item: ...


@runtime_checkable
class HasFeatureShapes(Protocol):
    """A reader that reports each modality's per-sample input shape."""

    feature_shapes: dict[str, tuple[int, ...]]


@runtime_checkable
class HasClassNames(Protocol):
    """A reader that names its classes."""

    class_names: list[str]


class InMemorySplit(Dataset):
    """A split held as tensors: ``features`` (``{modality: [N, ...]}``), ``mask``
    (bool ``[N, M]``), ``targets`` (long ``[N]``) and ``modalities``, set by the subclass.
    Gives items one at a time and, as a :class:`BatchReader`, a batch by one indexing per
    field instead of one per sample (the MMF dataset fetches batches with it)."""

    modalities: list[str]
    features: dict[str, torch.Tensor]
    mask: torch.Tensor
    targets: torch.Tensor

    def __len__(self) -> int:
        return int(self.targets.shape[0])

    def __getitem__(self, i: int) -> Item:
        i = range(len(self))[i]  # bounds check, negative indices
        return {
            "inputs": {m: self.features[m][i] for m in self.modalities},
            "mask": self.mask[i],
            "targets": self.targets[i],
            "index": torch.tensor(i, dtype=torch.long),
        }

    def get_batch(self, indices: Sequence[int]) -> Item:
        """The items at ``indices``, every field stacked (``[B, ...]``)."""
        i = torch.tensor([range(len(self))[j] for j in indices], dtype=torch.long)
        return {
            "inputs": {m: self.features[m][i] for m in self.modalities},
            "mask": self.mask[i],
            "targets": self.targets[i],
            "index": i,
        }
