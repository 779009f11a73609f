"""The few collective operations the methods need, as no-ops outside torch.distributed."""

import dataclasses
import hashlib
from collections.abc import Iterable, Sequence

import torch
import torch.distributed as dist


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def weighted_mean(total: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """Sum ``total`` and ``count`` over ranks and divide: the global mean."""
    if world_size() > 1:
        packed = torch.cat([total.reshape(-1), count.reshape(1).to(total.dtype)])
        dist.all_reduce(packed)
        total, count = packed[:-1].view_as(total), packed[-1]
    return total / count.clamp(min=1)


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    if world_size() > 1:
        tensor = tensor.clone()
        dist.all_reduce(tensor)
    return tensor


def average_gradients(params: Iterable[torch.nn.Parameter]) -> None:
    """Average ``.grad`` over ranks, keeping ``None`` where no rank has a gradient
    (so an idle encoder is not stepped by SGD's momentum); one flat all-reduce."""
    n = world_size()
    if n == 1:
        return
    params = [p for p in params if p.requires_grad]
    # on the parameters' device: NCCL reduces only CUDA tensors
    has = torch.tensor(
        [p.grad is not None for p in params],
        dtype=torch.float32,
        device=params[0].device if params else None,
    )
    dist.all_reduce(has, op=dist.ReduceOp.MAX)
    active: tuple[torch.nn.Parameter, ...] = tuple(
        p for p, h in zip(params, has, strict=False) if h > 0
    )
    for p in active:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    if not active:
        return
    flat = torch.cat([p.grad.reshape(-1) for p in active])
    dist.all_reduce(flat)
    flat /= n
    offset = 0
    for p in active:
        k = p.numel()
        p.grad.copy_(flat[offset : offset + k].view_as(p))
        offset += k


def same_on_all_ranks(tensors: Sequence[torch.Tensor], device=None) -> bool:
    """Whether every rank holds bit-identical ``tensors``: a SHA-256 of their bytes per
    rank, all-gathered (on ``device``: NCCL gathers only CUDA tensors) and compared."""
    n = world_size()
    if n == 1:
        return True
    digest = hashlib.sha256()
    for t in tensors:
        digest.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    mine = torch.tensor(list(digest.digest()), dtype=torch.int64, device=device)
    gathered = [torch.zeros_like(mine) for _ in range(n)]
    dist.all_gather(gathered, mine)
    return all(torch.equal(g, gathered[0]) for g in gathered)


def shard_range(size: int, rank: int, world: int) -> range:
    """Rank ``rank``'s contiguous share of ``range(size)`` for evaluation: every index on
    exactly one rank, no padding and none dropped; the first ``size % world`` ranks get
    one more (7 samples on 2 ranks: 0-3 and 4-6)."""
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"rank {rank} is not in a world of {world} ranks")
    base, extra = divmod(size, world)
    start = rank * base + min(rank, extra)
    return range(start, start + base + (rank < extra))


def gather_objects(obj) -> list:
    """``[obj of rank 0, obj of rank 1, ...]`` on every rank (``all_gather_object``);
    ``[obj]`` outside torch.distributed."""
    n = world_size()
    if n == 1:
        return [obj]
    gathered = [None] * n
    dist.all_gather_object(gathered, obj)
    return gathered


def reassemble(parts: Sequence[dict[str, torch.Tensor]], size: int) -> dict[str, torch.Tensor]:
    """Concatenate per-rank predictions (dicts of tensors with the same keys, one row per
    sample, ``"index"`` the sample's position in its split) and put the rows in index
    order.  Every index of ``range(size)`` must appear exactly once: a ValueError names the
    missing and the duplicated ones otherwise."""
    keys = list(parts[0]) if parts else ["index"]
    for i, part in enumerate(parts):
        if list(part) != keys:
            raise ValueError(f"rank {i} gathered the keys {list(part)}, rank 0 {keys}")
    whole = {k: torch.cat([part[k] for part in parts]) for k in keys} if parts else {}
    index = whole.get("index", torch.zeros(0, dtype=torch.long)).long()
    counts = torch.bincount(index[(index >= 0) & (index < size)], minlength=size)
    missing = torch.nonzero(counts == 0).flatten().tolist()
    duplicated = torch.nonzero(counts > 1).flatten().tolist()
    outside = index[(index < 0) | (index >= size)].tolist()
    if missing or duplicated or outside:
        raise ValueError(
            f"evaluation must score each of the {size} samples exactly once; missing "
            f"indices {missing[:20]}, duplicated {duplicated[:20]}, out of range {outside[:20]}"
            + (
                " (first 20 of each)"
                if max(len(missing), len(duplicated), len(outside)) > 20
                else ""
            )
        )
    order = torch.argsort(index)
    return {k: v[order] for k, v in whole.items()}


GRAD_SYNCS = ("auto", "allreduce", "ddp")


class _OneStep(torch.nn.Module):
    """A model's single training step as a module's ``forward``, so that
    DistributedDataParallel sees the forward whose backward it syncs.  Returns the loss
    beside the step (DDP passes the tensors it finds in the output through its sink)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch, iteration: int):
        steps = list(self.model.training_steps(batch, iteration))
        if len(steps) != 1:
            raise RuntimeError(
                f"training.grad_sync=ddp needs one training step per batch; "
                f"{type(self.model).__name__} yielded {len(steps)} (use allreduce)"
            )
        return {"loss": steps[0].loss, "step": steps[0]}


def check_grad_sync(model_cls, grad_sync: str) -> None:
    """A ValueError unless ``grad_sync`` is one of :data:`GRAD_SYNCS` and, for ``ddp``,
    ``model_cls`` takes one step per batch (``ONE_STEP_PER_BATCH``; not MLA).  ``auto``
    is ``ddp`` for such models and ``allreduce`` for the others (:func:`resolve_grad_sync`)."""
    if grad_sync not in GRAD_SYNCS:
        raise ValueError(f"training.grad_sync: {grad_sync!r} is not one of {list(GRAD_SYNCS)}")
    if grad_sync == "ddp" and not getattr(model_cls, "ONE_STEP_PER_BATCH", True):
        raise ValueError(
            f"training.grad_sync=ddp: {getattr(model_cls, '__name__', model_cls)} takes several "
            "optimizer steps after one forward (one per modality), which "
            "DistributedDataParallel cannot sync (one backward per forward); use "
            "training.grad_sync=allreduce"
        )


def resolve_grad_sync(model_cls, grad_sync: str) -> str:
    """``auto`` -> ``ddp`` for a one-step-per-batch model (measured faster on 2 gloo
    processes: docs/reliability.md), ``allreduce`` for MLA; other values unchanged."""
    check_grad_sync(model_cls, grad_sync)
    if grad_sync == "auto":
        return "ddp" if getattr(model_cls, "ONE_STEP_PER_BATCH", True) else "allreduce"
    return grad_sync


def wrap_for_grad_sync(model: torch.nn.Module, grad_sync: str):
    """``training.grad_sync``: None for ``allreduce`` (the trainer calls
    :func:`average_gradients` after each backward) or outside torch.distributed; for
    ``ddp`` a DistributedDataParallel around the model's training step, with
    ``find_unused_parameters`` (a unimodal model or a missing modality leaves encoders
    without gradients; they keep ``grad`` None, as with ``allreduce``).  Models whose
    ``training_steps`` take several steps after one forward (MLA: one per modality)
    cannot use DDP, whose reducer syncs one backward per forward: a ValueError says so."""
    model_cls = type(model) if isinstance(model, torch.nn.Module) else model
    if resolve_grad_sync(model_cls, grad_sync) == "allreduce":
        return None
    if world_size() == 1:
        return None
    return torch.nn.parallel.DistributedDataParallel(
        _OneStep(model), device_ids=None, find_unused_parameters=True
    )


def ddp_steps(ddp, batch, iteration: int):
    """The one Step of :class:`_OneStep` run through ``ddp``, its loss DDP's output."""
    out = ddp(batch, iteration)
    yield dataclasses.replace(out["step"], loss=out["loss"])
