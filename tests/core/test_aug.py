"""AUG's rule with hand-computed numbers (mla_plugin/core/aug.py)."""

import math

import pytest
import torch

from mla_plugin.core.aug import assign_learner, boosting_loss, merge_logits


def test_the_residual_learner_is_weighted_by_what_the_ensemble_gets_wrong():
    # p_O[y] = 0.8 -> the newest learner's CE weight 1 - 0.5 * 0.8 = 0.6 (the card's example)
    y = torch.tensor([0])
    previous = torch.log(torch.tensor([[0.8, 0.2]]))
    newest = torch.zeros(1, 2)  # CE = log 2
    ensemble = previous + newest  # softmax unchanged: CE = -log 0.8
    loss = boosting_loss(ensemble, previous, newest, y, residual_weight=0.5)
    expected = 2 * -math.log(0.8) + 0.6 * math.log(2)  # = 0.862175
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert loss.item() == pytest.approx(0.862175, abs=1e-6)
    # residual weight 0: the plain sum of the three CEs
    plain = boosting_loss(ensemble, previous, newest, y, residual_weight=0.0)
    assert plain.item() == pytest.approx(2 * -math.log(0.8) + math.log(2), rel=1e-6)
    # the weight is a constant: no gradient flows into the previous ensemble through it
    previous.requires_grad_(True)
    boosting_loss(previous * 1.0, previous, newest, y, residual_weight=0.5).backward()
    p = torch.tensor([0.8, 0.2])
    assert torch.allclose(previous.grad, 2 * (p - torch.tensor([1.0, 0.0])), atol=1e-6)


def test_without_added_learners_it_is_the_plain_ce_and_absent_samples_are_left_out():
    y = torch.tensor([0, 1])
    logits = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    ce = torch.nn.functional.cross_entropy(logits, y, reduction="none")
    assert boosting_loss(logits, None, None, y, residual_weight=0.5).item() == pytest.approx(
        ce.mean().item()
    )
    present = torch.tensor([True, False])
    assert boosting_loss(
        logits, None, None, y, residual_weight=0.5, present=present
    ).item() == pytest.approx(ce[0].item())


def test_assignment_gives_the_weaker_side_a_learner():
    # sums 40 and 30: rho = 1.333 > 1.01, a learner for the visual side (the card's example)
    assert assign_learner({"a": 40.0, "v": 30.0}, balance=1.0, margin=0.01) == "v"
    assert assign_learner({"a": 30.0, "v": 40.0}, balance=1.0, margin=0.01) == "a"
    assert assign_learner({"a": 40.0, "v": 39.8}, balance=1.0, margin=0.01) is None  # 1.005
    assert assign_learner({"a": 40.0, "v": 30.0}, balance=1.5, margin=0.01) == "a"  # 1.33 < 1.49


def test_inference_merges_with_mu_and_a_lone_modality_counts_alone():
    z = {"a": torch.tensor([[1.0, 0.0], [1.0, 0.0]]), "v": torch.tensor([[0.0, 1.0], [0.0, 1.0]])}
    assert torch.allclose(merge_logits(z, 0.4)[0], torch.tensor([0.4, 0.6]))
    present = torch.tensor([[True, True], [True, False]])
    merged = merge_logits(z, 0.4, present)
    assert torch.allclose(merged, torch.tensor([[0.4, 0.6], [1.0, 0.0]]))
