"""The few collective operations the methods need, as no-ops outside torch.distributed."""

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
