"""The collectives of ``mla_plugin.core.distributed`` in two real gloo processes."""

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mla_plugin.core.distributed import (
    reassemble,
    resolve_grad_sync,
    same_on_all_ranks,
    shard_range,
    wrap_for_grad_sync,
)

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


def test_shard_range_covers_every_index_once_without_padding():
    assert [list(shard_range(7, r, 2)) for r in range(2)] == [[0, 1, 2, 3], [4, 5, 6]]
    for size, world in [(7, 2), (10, 3), (2, 4), (1, 1), (256, 2)]:
        shards = [shard_range(size, r, world) for r in range(world)]
        assert sorted(i for s in shards for i in s) == list(range(size))
        assert max(map(len, shards)) - min(map(len, shards)) <= 1
    with pytest.raises(ValueError, match="rank 2 is not in a world of 2 ranks"):
        shard_range(7, 2, 2)


def test_reassemble_restores_index_order_and_names_missing_and_duplicated():
    def part(index):
        index = torch.tensor(index)
        return {"scores": index.float().view(-1, 1) * 10, "index": index}

    whole = reassemble([part([4, 5, 6]), part([0, 2, 1, 3])], 7)
    assert whole["index"].tolist() == list(range(7))
    assert whole["scores"].flatten().tolist() == [10.0 * i for i in range(7)]
    with pytest.raises(ValueError, match=r"missing indices \[3\], duplicated \[\], out"):
        reassemble([part([0, 1, 2]), part([4, 5, 6])], 7)
    with pytest.raises(
        ValueError, match=r"missing indices \[\], duplicated \[2\], out of range \[\]"
    ):
        reassemble([part([0, 1, 2, 3]), part([2, 4, 5, 6])], 7)
    with pytest.raises(ValueError, match=r"out of range \[7\]"):
        reassemble([part([0, 1, 2, 3, 4, 5, 6, 7])], 7)
    with pytest.raises(ValueError, match=r"rank 1 gathered the keys \['index'\]"):
        reassemble([part([0]), {"index": torch.tensor([1])}], 2)


def test_grad_sync_choices_and_mla_refused():
    from types import SimpleNamespace

    assert wrap_for_grad_sync(torch.nn.Linear(2, 2), "allreduce") is None
    mla_like = SimpleNamespace(ONE_STEP_PER_BATCH=False)
    assert resolve_grad_sync(torch.nn.Linear, "auto") == "ddp"
    assert resolve_grad_sync(mla_like, "auto") == "allreduce"
    assert resolve_grad_sync(mla_like, "allreduce") == "allreduce"
    assert wrap_for_grad_sync(torch.nn.Linear(2, 2), "ddp") is None  # no process group
    with pytest.raises(ValueError, match=r"training.grad_sync: 'nccl' is not one of"):
        wrap_for_grad_sync(torch.nn.Linear(2, 2), "nccl")
    with pytest.raises(ValueError, match="one per modality.*use training.grad_sync=allreduce"):
        wrap_for_grad_sync(mla_like, "ddp")


def test_ddp_for_mla_stops_the_run_before_training(tmp_path):
    from tests.support import make_trainer

    with pytest.raises(ValueError, match=r"training.grad_sync=ddp: MLA takes several optimizer"):
        make_trainer(str(tmp_path / "save"), "training.grad_sync=ddp")
