"""ReconBoost (mla_plugin/core/reconboost.py, mla_plugin/models/reconboost.py): the
boosting loss and the reconcilement term by hand, the rounds as stages, a boosting step
that trains only its learner, the switches, three modalities and bad keys."""

import math

import pytest
import torch

from mla_plugin.core.reconboost import boosting_loss, reconcilement_loss
from tests.support import make_trainer, three_modality_yaml

TINY = [
    "model=reconboost",
    "dataset_config.synthetic.sizes.train=64",
    "dataset_config.synthetic.sizes.val=32",
    "dataset_config.synthetic.sizes.test=32",
    "training.batch_size=32",
    "model_config.reconboost.reconboost_boost_epochs=1",
    "model_config.reconboost.reconboost_rectify_epochs=1",
    "model_config.reconboost.reconboost_rounds=2",
]


def test_the_cards_boosting_example_by_hand():
    # C = 6, y = 0; logits [ln 5, 0, 0, 0, 0, 0] give softmax[0] = 5 / (5 + 5) = 0.5 for
    # both the joint prediction and the learner: weight (5 - 1 * 0.5) / 6 = 0.75, CE ln 2
    logits = torch.tensor([[math.log(5.0), 0, 0, 0, 0, 0]])
    y = torch.tensor([0])
    loss = boosting_loss(logits, logits.clone(), y, w1=5.0, w2=1.0)
    assert float(loss) == pytest.approx(0.75 * math.log(2), abs=1e-6)  # 0.51986
    assert round(float(loss), 5) == 0.51986
    # a sample the others get right (p[y] near 1) weighs (5 - 1) / 6; one they miss 5 / 6
    joint = torch.tensor([[50.0, 0, 0, 0, 0, 0], [-50.0, 0, 0, 0, 0, 0]])
    both = boosting_loss(logits.repeat(2, 1), joint, torch.tensor([0, 0]), w1=5.0, w2=1.0)
    assert float(both) == pytest.approx((4 / 6 + 5 / 6) / 2 * math.log(2), abs=1e-6)
    # an absent sample (present False) is left out of the mean
    one = boosting_loss(logits.repeat(2, 1), joint, torch.tensor([0, 0]), w1=5.0, w2=1.0,
                        present=torch.tensor([True, False]))  # fmt: skip
    assert float(one) == pytest.approx(4 / 6 * math.log(2), abs=1e-6)


def test_the_reconcilement_term_by_hand_and_its_gradient():
    # softmax [0, 0] = (.5, .5); softmax [ln 3, 0] = (.75, .25): mean square 0.0625
    g = torch.zeros(1, 2, requires_grad=True)
    prev = torch.tensor([[math.log(3.0), 0.0]])
    term = reconcilement_loss(g, prev, detached=False)
    assert float(term.detach()) == pytest.approx(0.0625)
    term.backward()
    # d/dg0 of ((q0 - .75)² + (q1 - .25)²) / 2 with dq0/dg0 = q0 q1 = .25, dq1/dg0 = -.25:
    # (-.25 * .25) + (.25 * -.25) = -0.125
    assert g.grad[0, 0].item() == pytest.approx(-0.125)
    detached = reconcilement_loss(g, prev, detached=True)  # the official code's
    assert float(detached) == pytest.approx(0.0625) and not detached.requires_grad


def test_the_rounds_are_stages_that_freeze_the_other_learners(tmp_path):
    model = make_trainer(str(tmp_path), *TINY).model
    stages = model.stages()
    assert [(s.name, s.epochs) for s in stages] == [
        ("boost1_strong", 1), ("rectify1", 1), ("boost2_weak", 1), ("rectify2", None)
    ]  # fmt: skip
    assert set(stages[0].freezes) == {"encoders.weak", "heads.weak", "boost_rate"}
    assert set(stages[2].freezes) == {"encoders.strong", "heads.strong", "boost_rate"}
    model.set_stage(stages[2])
    assert (model.boosted, model.previous) == ("weak", "strong")
    model.set_stage(stages[3])
    assert model.boosted is None
    shared = make_trainer(
        str(tmp_path / "s"), *TINY, "model_config.reconboost.reconboost_head=shared"
    )
    assert set(shared.model.stages()[0].freezes) == {"encoders.weak", "boost_rate"}


def test_a_boosting_step_trains_its_learner_and_the_term_has_a_gradient(tmp_path):
    trainer = make_trainer(str(tmp_path), *TINY)
    model = trainer.model
    model.set_stage(model.stages()[2])  # boost the weak learner, the strong one before it
    batch = trainer.ctx.to_device(next(iter(trainer.ctx.train_loader)))
    step = next(model.training_steps(batch, 0))
    assert step.modality == "weak"
    step.loss.backward()
    assert all(p.grad is None for p in model.encoders["strong"].parameters())
    assert all(p.grad is None for p in model.heads["strong"].parameters())
    assert any(
        p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoders["weak"].parameters()
    )

    def loss_with(alpha, detached):
        model.alpha, model.ga_detached = alpha, detached
        model.zero_grad(set_to_none=True)
        loss = next(model.training_steps(batch, 0)).loss
        loss.backward()
        return float(loss.detach()), model.heads["weak"].weight.grad.clone()

    plain, g_plain = loss_with(0.0, False)
    paper, g_paper = loss_with(0.5, False)
    code, g_code = loss_with(0.5, True)
    assert paper > plain and code == pytest.approx(paper)  # the term is in the value
    assert not torch.equal(g_paper, g_plain)  # with gradient (the paper)
    assert torch.equal(g_code, g_plain)  # the official code's: no gradient at all


def test_three_modalities_with_missing_and_bad_keys(tmp_path):
    config = tmp_path / "three.yaml"
    config.write_text(three_modality_yaml())
    t = make_trainer(str(tmp_path / "run"), *TINY, "model_config.reconboost.reconboost_rounds=3",
                     "training.max_epochs=6", config=str(config))  # fmt: skip
    assert [s.name for s in t.model.stages()][::2] == ["boost1_a", "boost2_b", "boost3_c"]
    t.train()
    assert t.ctx.stage == "rectify3"
    with pytest.raises(ValueError, match="model_config.reconboost.reconboost_rounds"):
        make_trainer(str(tmp_path / "bad"), *TINY, "model_config.reconboost.reconboost_rounds=0")
