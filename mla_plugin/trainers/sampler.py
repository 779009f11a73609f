"""A sampler whose order is a pure function of (seed, epoch, rank), so a run resumed in
the middle of an epoch sees exactly the batches an uninterrupted run would, and the view
of a split as a per-epoch list of training examples (a method's re-sampled set)."""

from collections.abc import Iterator

import torch


class EpochSampler(torch.utils.data.Sampler):
    """Shuffled (or sequential) indices for one epoch, sharded over ``world`` ranks.

    Each rank gets ``ceil(n / world)`` indices (the permutation wraps to pad, as
    :class:`~torch.utils.data.DistributedSampler` does); ``start`` skips that many
    indices of this rank's share, to resume mid-epoch.
    """

    def __init__(self, size: int, seed: int, shuffle: bool = True, rank: int = 0, world: int = 1):
        self.size, self.seed, self.shuffle, self.rank, self.world = size, seed, shuffle, rank, world
        self.epoch, self.start = 0, 0
        self.per_rank = -(-size // world)

    def resize(self, size: int) -> None:
        """A new number of examples to draw from (the next epochs' training examples),
        from the start of an epoch."""
        self.size, self.per_rank, self.start = size, -(-size // self.world), 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def __iter__(self) -> Iterator[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
            order = torch.randperm(self.size, generator=g)
        else:
            order = torch.arange(self.size)
        total = self.per_rank * self.world
        if total > self.size:
            order = torch.cat([order, order[: total - self.size]])
        mine = order[self.rank : total : self.world]
        return iter(mine[self.start :].tolist())

    def __len__(self) -> int:
        return self.per_rank - self.start


class ShardSampler(torch.utils.data.Sampler):
    """The indices of ``indices`` (a range: this rank's share of a split, from
    :func:`~mla_plugin.core.distributed.shard_range`), in order, for evaluation."""

    def __init__(self, indices: range):
        self.indices = indices

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class ExampleView(torch.utils.data.Dataset):
    """A split's samples as a list of training examples: example k is sample
    ``indices[k]`` of ``dataset`` with its presence mask ANDed with ``keep[k]`` (a copy
    that keeps only some modalities; the model then treats the others as absent).  Built
    by :meth:`~mla_plugin.trainers.context.RunContext.set_train_examples`."""

    def __init__(self, dataset, indices: torch.Tensor, keep: torch.Tensor):
        self.dataset, self.indices, self.keep = dataset, indices.long(), keep.bool()
        self.dataset_name, self.dataset_type = dataset.dataset_name, dataset.dataset_type

    def __len__(self) -> int:
        return len(self.indices)

    def __getitems__(self, keys):
        keys = torch.as_tensor(keys, dtype=torch.long)
        base = self.indices[keys].tolist()
        keep = self.keep[keys]
        fetch = getattr(self.dataset, "__getitems__", None)
        items = fetch(base) if fetch else [self.dataset[i] for i in base]
        if isinstance(items, dict):
            items["mask"] = items["mask"].bool() & keep
            return items
        for item, row in zip(items, keep, strict=True):
            item.mask = item.mask.bool() & row
        return items

    def __getitem__(self, key):
        return self.__getitems__([key])[0]
