"""The collectives of ``mla_plugin.core.distributed`` in two real gloo processes."""

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mla_plugin.core.distributed import same_on_all_ranks

pytestmark = [pytest.mark.distributed]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, results):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        shared = [torch.arange(6.0).view(2, 3), torch.ones(4, dtype=torch.float64)]
        drifted = shared[:1] + [torch.ones(4, dtype=torch.float64) + rank * 1e-12]
        results[rank] = (same_on_all_ranks(shared), same_on_all_ranks(drifted))
    finally:
        dist.destroy_process_group()


def test_same_on_all_ranks_sees_a_last_bit_difference():
    results = mp.Manager().dict()
    mp.spawn(_worker, args=(2, _free_port(), results), nprocs=2, join=True)
    # equal tensors agree on both ranks; a 1e-12 drift on one rank is seen by both
    assert dict(results) == {0: (True, False), 1: (True, False)}
    assert same_on_all_ranks([torch.zeros(1)])  # no process group: trivially in sync
