"""Held-out data a method learns from (G-Blending's loss weights, D&R's purity, LFM's
alignment weight, ...): the protocol's rule is the **val** split, the one model selection
reads too; never the test split (docs/leaderboard.md "Protocol").

A method's training hook gets the run context at ``setup(ctx)`` and asks here for its
batches; every rank reads the whole split in index order, so every rank learns the same
thing.  Framework-light: only torch's sampler and the context's own ``loader``.
"""

from __future__ import annotations

import torch

HELDOUT_SPLIT = "val"


def heldout_loader(ctx, batch_size: int | None = None):
    """A DataLoader over the held-out split (``val``), in index order, collated as the
    trainer collates (``ctx.loader``); batches are moved with ``ctx.to_device``."""
    data = ctx.datasets.get(HELDOUT_SPLIT)
    if data is None or len(data) == 0:
        raise ValueError(
            f"this method learns from held-out data, the '{HELDOUT_SPLIT}' split, and the "
            f"run's dataset {ctx.dataset_name!r} has none"
        )
    return ctx.loader(data, torch.utils.data.SequentialSampler(data), batch_size=batch_size)
