"""The few collective operations the methods need, as no-ops outside torch.distributed."""
from typing import Iterable, Tuple

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
    has = torch.tensor([p.grad is not None for p in params], dtype=torch.float32)
    dist.all_reduce(has, op=dist.ReduceOp.MAX)
    active: Tuple[torch.nn.Parameter, ...] = tuple(p for p, h in zip(params, has) if h > 0)
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
        p.grad.copy_(flat[offset:offset + k].view_as(p))
        offset += k
