"""``mla_plugin.core.precision``: the run's precision from its two keys, and fp16 ranks
that skip a step together (two real gloo processes)."""

import math
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mla_plugin.core.distributed import average_gradients
from mla_plugin.core.precision import MixedPrecision, resolve_precision
from tests.core.test_distributed_core import _free_port


@pytest.mark.parametrize(
    "precision, fp16, expected",
    [
        ("fp32", False, "fp32"),
        ("bf16", False, "bf16"),
        ("fp32", True, "fp16"),
        ("fp16", True, "fp16"),
    ],
)
def test_precision_from_its_two_keys(precision, fp16, expected):
    assert resolve_precision(precision, fp16) == expected


def test_fp32_is_a_pass_through():
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    amp = MixedPrecision("fp32", "cpu")
    amp.backward(model(torch.ones(1, 3)).sum())
    assert amp.unscale(opt)
    assert amp.state_dict() == {}
    torch.testing.assert_close(model.weight.grad, torch.ones(1, 3))  # not scaled


def _worker(rank, world, port, results):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        model = torch.nn.Linear(4, 2)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        amp = MixedPrecision("fp16", "cpu")
        amp.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
        x = torch.ones(3, 4)
        if rank == 1:
            x[0, 0] = math.inf  # only rank 1's gradients overflow
        amp.backward(model(x).pow(2).mean())
        average_gradients(model.parameters())  # the loop's averaging (core/distributed)
        finite = amp.unscale(opt)
        before = model.weight.detach().clone()
        amp.step(opt)
        results[rank] = (finite, bool(torch.equal(model.weight, before)), amp.scaler.get_scale())
    finally:
        dist.destroy_process_group()


@pytest.mark.distributed
def test_ranks_skip_an_overflowing_step_together():
    """One rank's inf reaches every rank through the all-reduce before the unscale, so
    all of them see it, skip the step and lower the scale (unscaling first would let
    rank 0 step with the inf it received)."""
    results = mp.Manager().dict()
    mp.spawn(_worker, args=(2, _free_port(), results), nprocs=2, join=True)
    assert dict(results) == {0: (False, True, 2.0**9), 1: (False, True, 2.0**9)}
