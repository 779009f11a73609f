"""AMCo's rule with hand-computed numbers (mla_plugin/core/amco.py)."""

import math

import pytest
import torch

from mla_plugin.core.amco import (
    AMCoState,
    block_mass,
    class_mask,
    dependent_modalities,
    mask_count,
)


def test_mask_count_follows_the_sine_schedule_of_the_card():
    # eps 0.3, C 6, epoch 1 (0-based): l = 0, .1, .2, .3 -> p = 0, .5, .866, 1 -> N = 0, 3, 5, 6
    counts = [mask_count(b, 1, 6, epsilon=0.3, growth=0.1) for b in range(5)]
    assert counts == [0, 3, 5, 6, 6]
    # epoch 0: the counter never grows, nothing is masked
    assert [mask_count(b, 0, 6, epsilon=0.3, growth=0.1) for b in range(10)] == [0] * 10
    # a slower growth (0.05): l = 0.05 at batch 1 -> p = sin(pi/12) = 0.2588 -> N = 1
    assert mask_count(1, 1, 6, epsilon=0.3, growth=0.05) == 1


def test_dependence_is_one_softmax_over_the_concatenated_slices():
    # z_a = (2, 0), z_v = (0, 0): mass_a = (e^2 + 1) / (e^2 + 3) = 0.80749
    z = {"a": torch.tensor([[2.0, 0.0]]), "v": torch.tensor([[0.0, 0.0]])}
    mass = block_mass(z)
    assert mass[0, 0].item() == pytest.approx(0.8074897, abs=1e-6)
    assert dependent_modalities(z, sigma=0.5) == ["a"]
    assert dependent_modalities(z, sigma=0.81) == []
    # the batch mean: a second sample where v dominates as much gives 0.5 each, nobody > 0.5
    both = {
        "a": torch.tensor([[2.0, 0.0], [0.0, 0.0]]),
        "v": torch.tensor([[0.0, 0.0], [2.0, 0.0]]),
    }
    assert dependent_modalities(both, sigma=0.5) == []
    # a sample that lacks v is left out of v's mean: v's mean is then sample 2's 0.807
    present = torch.tensor([[True, False], [True, True]])
    assert dependent_modalities(both, sigma=0.5, present=present) == ["v"]


def test_class_mask_zeroes_exactly_n_classes_and_replays_from_its_state():
    state = AMCoState(sigma=0.5, epsilon=0.3, growth=0.1, seed=3)
    state.dependent = ["a"]
    saved = state.state_dict()
    first = state.masks(1, 2, 6)  # N = 5 of 6 classes
    assert list(first) == ["a"] and int((first["a"] == 0).sum()) == 5
    state.load_state_dict(saved)
    assert torch.equal(state.masks(1, 2, 6)["a"], first["a"])
    assert state.masks(0, 2, 6) == {}  # epoch 0
    g = torch.Generator().manual_seed(0)
    assert torch.equal(class_mask(0, 4, g), torch.ones(4))


def test_the_step_masks_the_dependent_slice_and_adds_the_unimodal_losses(tmp_path):
    from tests.support import make_trainer

    def step(unimodal_loss):
        trainer = make_trainer(
            str(tmp_path / str(unimodal_loss)), "model=amco",
            "dataset_config.synthetic.sizes.train=64", "training.batch_size=16",
            f"model_config.amco.amco_unimodal_loss={unimodal_loss}",
        )  # fmt: skip
        ctx = trainer.ctx
        model, state = ctx.model, ctx.hooks[0]
        ctx.epoch, ctx.batch_in_epoch = 1, 1  # l = 0.1: N = floor(10 sin(pi/6)) = 5 classes
        state.dependent = [model.modalities[0]]
        batch = ctx.to_device(next(iter(ctx.train_loader)))
        s = next(model.training_steps(batch, 0))
        return model, batch, s

    model, batch, s = step(True)
    a, v = model.modalities
    masked, unmasked = s.outputs["modality_scores"], s.outputs["unmasked_scores"]
    zeroed = (masked[a] == 0).all(0)
    assert int(zeroed.sum()) == 5 and torch.equal(masked[v], unmasked[v])
    assert torch.equal(masked[a][:, ~zeroed], unmasked[a][:, ~zeroed])
    ce = torch.nn.functional.cross_entropy
    fused = model.relabel(masked[a] + masked[v])
    expected = (
        ce(fused, batch.targets) + ce(masked[a], batch.targets) + ce(masked[v], batch.targets)
    )
    assert s.loss.item() == pytest.approx(expected.item(), rel=1e-6)
    model, batch, s = step(False)
    assert s.loss.item() == pytest.approx(ce(s.outputs["scores"], batch.targets).item(), rel=1e-6)
    assert not math.isnan(s.loss.item())
