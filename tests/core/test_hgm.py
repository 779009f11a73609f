"""HGM's h̄ (hgm_mean), P's reset (hgm_reset), trace(P)/s and the hook's exact resume."""

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from mla_plugin.core.hgm import FeatureMean, HeadGradientModification
from mla_plugin.core.hooks import Step

S = 4  # feature size


def make_hook(mean="batch", reset="never", decay=0.5):
    torch.manual_seed(0)
    head = nn.Linear(S, 3)
    return HeadGradientModification(
        head,
        mode="owm",
        alpha=0.1,
        p_frob_norm=False,
        project_bias=False,
        project_full_update=False,
        mean=mean,
        mean_decay=decay,
        reset=reset,
    )


def step(feats, epoch, b, modality="a"):
    return Step(
        loss=torch.zeros(()),
        modality=modality,
        modality_index=0,
        features={modality: feats},
        epoch=epoch,
        batch_index=b,
        num_batches=3,
    )


def drive(hook, batches, epochs=(1,), start=0):
    """Feed ``batches`` (list of [B, S] tensors) once per epoch; ``start`` skips the first
    batches of the first epoch (a resumed epoch)."""
    for e in epochs:
        hook.on_train_epoch_start(e, len(batches))
        for b, x in enumerate(batches):
            if e == epochs[0] and b < start:
                continue
            hook.on_before_optimizer_step(step(x, e, b))


def test_feature_mean_values():
    one, three = torch.ones(S), torch.full((S,), 3.0)
    n = torch.tensor(2.0)
    batch = FeatureMean("batch", 0.5)
    assert torch.equal(batch("a", 2 * one, n), one)
    run = FeatureMean("running", 0.5)
    assert torch.equal(run("a", 2 * one, n), one)  # bias-corrected: first step = batch mean
    # e = 0.5*(0.5*1) + 0.5*3 = 1.75; / (1 - 0.25) = 7/3
    torch.testing.assert_close(run("a", 2 * three, n), torch.full((S,), 7 / 3))
    assert torch.equal(run("b", 2 * three, n), three)  # per modality
    ep = FeatureMean("epoch", 0.5)
    ep.start_epoch(1)
    assert torch.equal(ep("a", 2 * one, n), one)  # epoch 1: the batch mean
    assert torch.equal(ep("a", 6 * three, 3 * n), three)
    ep.start_epoch(2)  # epoch 1's mean: (2 + 18) / 8 = 2.5
    assert torch.equal(ep("a", 2 * one, n), torch.full((S,), 2.5))
    ep.start_epoch(2)  # a resumed epoch does not roll the accumulators
    assert torch.equal(ep("a", 2 * three, n), torch.full((S,), 2.5))
    ep.start_epoch(3)  # epoch 2's mean: (2 + 6) / 4
    assert torch.equal(ep("a", 2 * one, n), torch.full((S,), 2.0))


def test_bad_values_name_the_key():
    with pytest.raises(ValueError, match="hgm_mean: 'dataset'"):
        make_hook(mean="dataset")
    with pytest.raises(ValueError, match="hgm_reset: 'batch'"):
        make_hook(reset="batch")
    with pytest.raises(ValueError, match="hgm_mean_decay"):
        make_hook(mean="running", decay=1.0)


def test_reset_and_trace_summary():
    torch.manual_seed(1)
    batches = [torch.rand(8, S) for _ in range(3)]
    never, every = make_hook(reset="never"), make_hook(reset="epoch")
    drive(never, batches, epochs=(1, 2))
    drive(every, batches, epochs=(1, 2))
    t_never, t_every = never.summary()["trace_p"], every.summary()["trace_p"]
    assert len(t_never) == len(t_every) == 2
    assert t_never[0] == t_every[0] < 1  # identical first epoch (no reset before epoch 2)
    assert t_never[1] < t_never[0]  # P keeps shrinking
    assert t_every[1] > t_never[1]  # reset to I at epoch 2 -> only epoch 2's steps count
    p = every.projector.P
    torch.testing.assert_close(t_every[1], float(torch.trace(p)) / S)


@pytest.mark.parametrize("mean", ["batch", "running", "epoch"])
def test_state_round_trip_resumes_exactly(mean):
    torch.manual_seed(2)
    batches = [torch.rand(8, S) for _ in range(3)]
    full = make_hook(mean=mean, reset="epoch")
    drive(full, batches, epochs=(1, 2, 3))
    # stop after batch 1 of epoch 2, save, resume into a fresh hook
    first = make_hook(mean=mean, reset="epoch")
    drive(first, batches, epochs=(1,))
    first.on_train_epoch_start(2, 3)
    for b in range(2):
        first.on_before_optimizer_step(step(batches[b], 2, b))
    state = first.state_dict()
    resumed = make_hook(mean=mean, reset="epoch")
    resumed.load_state_dict(state)
    drive(
        resumed, batches, epochs=(2, 3), start=2
    )  # on_train_epoch_start(2) again, as the loop does
    assert torch.equal(resumed.projector.P, full.projector.P)
    assert resumed.summary() == full.summary()
    assert resumed.modality_steps == full.modality_steps


def _rank_worker(rank, world, feats, out):
    # the ranks meet through a file in the test's folder: no port to collide on
    store = "file://" + os.path.join(out, "rendezvous")
    dist.init_process_group("gloo", init_method=store, rank=rank, world_size=world)
    try:
        for mean in ("running", "epoch"):
            hook = make_hook(mean=mean, reset="never")
            drive(hook, [f[rank::world] for f in feats], epochs=(1, 2))
            torch.save(hook.projector.P, os.path.join(out, f"{mean}-{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.distributed
def test_two_ranks_equal_one_process(tmp_path):
    """h̄ sums features and counts over ranks: each rank's P equals one process's on the
    whole batch, for the running and the epoch means."""
    torch.manual_seed(3)
    feats = [torch.rand(8, S) for _ in range(3)]
    mp.spawn(_rank_worker, args=(2, feats, str(tmp_path)), nprocs=2, join=True)
    for mean in ("running", "epoch"):
        single = make_hook(mean=mean, reset="never")
        drive(single, feats, epochs=(1, 2))
        p0 = torch.load(tmp_path / f"{mean}-0.pt")
        p1 = torch.load(tmp_path / f"{mean}-1.pt")
        assert torch.equal(p0, p1)
        torch.testing.assert_close(p0, single.projector.P, rtol=1e-5, atol=1e-6)
        assert not torch.allclose(p0, torch.eye(S))
