import math

import pytest
import torch

from mla_plugin.core.pmr import (
    class_sums,
    pmr_coefficients,
    pmr_loss,
    prototype_logits,
    update_prototypes,
)


def test_card_example_prototype_logits():
    # h = (0, 0), prototypes (0, 0) and (3, 4): sim = (0, -5), p(class 0) = 1 / (1 + e^-5)
    sim = prototype_logits(torch.zeros(1, 2), torch.tensor([[0.0, 0.0], [3.0, 4.0]]))
    assert sim[0].tolist() == pytest.approx([0.0, -5.0], abs=1e-5)
    assert torch.softmax(sim, 1)[0, 0].item() == pytest.approx(0.99331, abs=1e-5)


def _s(a, v):
    return {"a": torch.tensor(a), "v": torch.tensor(v)}


def test_coefficients_scaled_and_constant():
    # card: s_a = 20, s_v = 10 -> rho = 2: only v's prototypical CE, at 0.6 (both rules agree)
    beta, ent = pmr_coefficients(_s(20.0, 10.0), alpha=0.6, rule="scaled")
    assert beta == {"a": 0.0, "v": pytest.approx(0.6)} and ent == {"a": 0.6, "v": 0.0}
    beta, _ = pmr_coefficients(_s(20.0, 10.0), alpha=0.6, rule="constant")
    assert beta == {"a": 0.0, "v": 0.6}
    # rho = 1.2: scaled gives 0.6 * (1.2 - 1) = 0.12, constant still 0.6
    beta, ent = pmr_coefficients(_s(12.0, 10.0), alpha=0.6, rule="scaled")
    assert beta["v"] == pytest.approx(0.12) and beta["a"] == 0 and ent["a"] == pytest.approx(0.12)
    beta, _ = pmr_coefficients(_s(10.0, 12.0), alpha=0.6, rule="constant")
    assert beta == {"a": 0.6, "v": 0.0}
    beta, _ = pmr_coefficients(_s(10.0, 10.0), alpha=0.6, rule="scaled")
    assert beta == {"a": 0.0, "v": 0.0}
    with pytest.raises(ValueError, match="rule"):
        pmr_coefficients(_s(1.0, 2.0), alpha=1.0, rule="other")


def test_three_modalities_over_the_mean_of_the_others():
    s = {"a": torch.tensor(4.0), "v": torch.tensor(2.0), "t": torch.tensor(1.0)}
    # rho_a = 4/1.5, rho_v = 2/2.5 = 0.8, rho_t = 1/3
    beta, ent = pmr_coefficients(s, alpha=1.0, rule="scaled")
    assert beta["a"] == 0 and beta["v"] == pytest.approx(0.25) and beta["t"] == pytest.approx(1.0)
    assert ent["a"] == pytest.approx(1.0) and ent["v"] == ent["t"] == 0


def test_loss_hand_computed():
    # one sample of class 0, two classes; fused logits 0 -> CE = ln 2.
    # a: sim (0, -5); v: sim (0, 0) -> p^P_a(y) = 0.99331, p^P_v(y) = 0.5: rho = 1.98662,
    # beta_v = 1 * clip(0.98662, 0, 1), L_P,v = ln 2; entropy of a's softmax (0.99331,
    # 0.00669): H_a = 0.04036, weight mu_H * 0.98662 with mu_H = 0.5.
    fused = torch.zeros(1, 2)
    sims = {"a": torch.tensor([[0.0, -5.0]]), "v": torch.zeros(1, 2)}
    t = torch.tensor([0])
    loss, beta, ent = pmr_loss(fused, sims, t, None, alpha=1.0, rule="scaled", entropy_weight=0.5)
    p = 1 / (1 + math.exp(-5))
    rho = p / 0.5
    h_a = -(p * math.log(p) + (1 - p) * math.log(1 - p))
    expected = math.log(2) + (rho - 1) * math.log(2) - 0.5 * (rho - 1) * h_a
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert beta["v"] == pytest.approx(rho - 1) and ent["a"] == pytest.approx(0.5 * (rho - 1))
    loss0, *_ = pmr_loss(fused, sims, t, None, alpha=1.0, rule="scaled", entropy_weight=0.0)
    assert loss0.item() == pytest.approx(math.log(2) + (rho - 1) * math.log(2), rel=1e-5)
    # v absent: its prototypical CE and score leave out that sample (here: all of them)
    loss_m, beta_m, _ = pmr_loss(
        fused, sims, t, torch.tensor([[True, False]]), alpha=1.0, rule="scaled", entropy_weight=0.0
    )
    assert beta_m["v"] == 0.0 and loss_m.item() == pytest.approx(math.log(2))


def test_prototypes_class_means_and_ema():
    h = torch.tensor([[2.0, 2.0], [4.0, 0.0], [9.0, 9.0]])
    y = torch.tensor([0, 0, 1])
    sums, counts = class_sums(h, y, 3, torch.tensor([True, True, False]))  # sample 2 absent
    new = update_prototypes(None, sums, counts, 0.5)
    assert new.tolist() == [[3.0, 1.0], [0.0, 0.0], [0.0, 0.0]]
    old = torch.tensor([[1.0, 1.0], [5.0, 5.0], [7.0, 7.0]])
    # (1 - 0.5) * new + 0.5 * old for seen classes; unseen ones keep the old prototype
    assert update_prototypes(old, sums, counts, 0.5).tolist() == [
        [2.0, 1.0],
        [5.0, 5.0],
        [7.0, 7.0],
    ]
    assert update_prototypes(old, sums, counts, 0.0).tolist()[0] == [3.0, 1.0]
