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
