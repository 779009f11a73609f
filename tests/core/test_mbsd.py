"""MBSD (mla_plugin/core/mbsd.py, mla_plugin/models/mbsd.py): the weighted pairwise
self-distillation as BalanceBenchmark writes it, by hand."""

import math

import pytest
import torch

from mla_plugin.core.mbsd import mbsd_distillation, pair_distillation
from tests.support import make_trainer

# card 9: p_a[y] = 0.9 (right), p_v[y] = 0.3; two classes, y = 0
Z_A = torch.tensor([[math.log(9.0), 0.0]])
Z_V = torch.tensor([[math.log(3 / 7), 0.0]])
Y = torch.tensor([0])
RS = (math.log(9.0) - math.log(3 / 7)) ** 2 / 2  # ||z_a - z_v||^2 / C = 4.63456


def test_card_example_both_kl_inputs():
    w = 0.6
    kl_bb = 0.3 * (math.log(0.3) - 0.9)  # -0.63119: a probability where a log belongs
    got = pair_distillation(Z_A, Z_V, Y, kl_input="probability")
    assert float(got) == pytest.approx(w * (RS + kl_bb), rel=1e-5)  # 2.40202
    assert kl_bb == pytest.approx(-0.63119, abs=1e-5)
    kl = 0.3 * (math.log(0.3) - math.log(0.9))  # the pointwise KL
    got = pair_distillation(Z_A, Z_V, Y, kl_input="log_probability")
    assert float(got) == pytest.approx(w * (RS + kl), rel=1e-5)  # 2.58299
    with pytest.raises(ValueError, match="kl_input"):
        pair_distillation(Z_A, Z_V, Y, kl_input="kl")


def test_weight_is_zero_unless_one_is_right_and_both_present():
    wrong_a = torch.tensor([[0.0, math.log(9.0)]])  # p[0] = 0.1, argmax 1
    wrong_v = torch.tensor([[0.0, math.log(7 / 3)]])  # p[0] = 0.3, argmax 1
    assert float(pair_distillation(wrong_a, wrong_v, Y, kl_input="probability")) == 0.0
    absent = torch.tensor([False])
    got = pair_distillation(Z_A, Z_V, Y, kl_input="probability", both_present=absent)
    assert float(got) == 0.0
    # the batch divides: a second sample with weight 0 halves the term
    two = pair_distillation(
        torch.cat([Z_A, wrong_a]), torch.cat([Z_V, wrong_v]), torch.tensor([0, 0]),
        kl_input="probability",
    )  # fmt: skip
    assert float(two) == pytest.approx(0.6 * (RS - 0.63119) / 2, rel=1e-4)


def test_three_modalities_average_their_pairs():
    same = Z_A.clone()
    logits = {"a": Z_A, "v": Z_V, "t": same}
    pair = float(pair_distillation(Z_A, Z_V, Y, kl_input="probability"))
    # (a, v) and (v, t) are the card's pair, (a, t) equal logits: weight 0
    got = mbsd_distillation(logits, Y, kl_input="probability")
    assert float(got) == pytest.approx(2 * pair / 3, rel=1e-6)


def test_model_loss_adds_unimodal_ces_and_the_distillation(tmp_path):
    tiny = [
        "model=mbsd",
        "dataset_config.synthetic.sizes.train=64",
        "dataset_config.synthetic.sizes.val=32",
        "dataset_config.synthetic.sizes.test=32",
        "training.batch_size=16",
    ]
    trainer = make_trainer(str(tmp_path), *tiny)
    batch = trainer.ctx.to_device(next(iter(trainer.ctx.train_loader)))
    out = trainer.model(batch)
    ce = torch.nn.functional.cross_entropy
    expected = (
        ce(out["scores"], batch.targets)
        + sum(ce(z, batch.targets) for z in out["modality_scores"].values())
        + mbsd_distillation(out["modality_scores"], batch.targets, kl_input="probability")
    )
    loss = next(trainer.model.training_steps(batch, 0)).loss
    assert float(loss) == pytest.approx(float(expected), rel=1e-6)
    with pytest.raises(Exception, match="mbsd_kl_input"):
        make_trainer(str(tmp_path / "bad"), *tiny, "model_config.mbsd.mbsd_kl_input=kl")
