import math

import pytest
import torch
import torch.nn.functional as F

from mla_plugin.core.hooks import Step
from mla_plugin.core.qmf import (
    LossHistory,
    QMFHistoryHook,
    energy_confidence,
    qmf_fuse,
    qmf_loss,
    ranking_loss,
)

T = 10.0  # the paper's temperature (its home for the model: configs/models/qmf.yaml)


def test_energy_confidence():
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])
    c = energy_confidence(logits, temperature=T)
    assert torch.allclose(c, torch.tensor([math.log(2.0) / 10, math.log(4.0) / 10]))
    assert energy_confidence(logits, temperature=1.0)[0].item() == pytest.approx(math.log(2.0))


def test_qmf_fuse_weights_and_mask():
    fa = torch.tensor([[0.0, 0.0]], requires_grad=True)  # w = ln2/10
    fv = torch.tensor([[math.log(3.0), 0.0]])  # w = ln4/10
    fused, w = qmf_fuse({"a": fa, "v": fv}, temperature=T, detach=True)
    wa, wv = math.log(2.0) / 10, math.log(4.0) / 10
    assert w["a"].item() == pytest.approx(wa) and not w["a"].requires_grad
    assert torch.allclose(fused, torch.tensor([[wv * math.log(3.0), 0.0]]))
    fused, w = qmf_fuse(
        {"a": fa, "v": fv}, present=torch.tensor([[True, False]]), temperature=T, detach=True
    )
    assert torch.allclose(fused, torch.zeros(1, 2)) and w["v"].item() == 0.0
    fused, w = qmf_fuse({"a": fa, "v": fv}, temperature=T, detach=False)
    assert w["a"].requires_grad


def test_ranking_loss_margin_sign_issue_example():
    # the issue's pair: c = (0.5, 0.3), h = (0.1, 0.6); T = sign(h_i - h_j), m = 0.5
    conf, hist = torch.tensor([0.5, 0.3]), torch.tensor([0.1, 0.6])
    # official (QMF's and MLA's code): max(0, T(c_i - c_j) - m) = max(0, -0.2 - 0.5) = 0
    assert ranking_loss(conf, hist, margin_sign="official").item() == 0.0
    # plus: max(0, T(c_i - c_j) + m) = max(0, -0.2 + 0.5) = 0.3, for both pairs
    assert ranking_loss(conf, hist, margin_sign="plus").item() == pytest.approx(0.30)
    with pytest.raises(ValueError, match="qmf_rank_margin_sign.*'minus'"):
        ranking_loss(conf, hist, margin_sign="minus")


def test_ranking_loss_official_matches_margin_ranking_form():
    # the released code: MarginRankingLoss(margin=0)(c, roll(c) + m / T', -T), T' = T with 0 -> 1
    torch.manual_seed(0)
    c, h = torch.rand(16), torch.rand(16)
    h[3] = h[4]  # a tie
    c2, h2 = torch.roll(c, -1), torch.roll(h, -1)
    t = torch.sign(h - h2)
    t_nonzero = torch.where(t == 0, torch.ones_like(t), t)
    ref = torch.nn.MarginRankingLoss(margin=0.0)(c, c2 + (h - h2).abs() / t_nonzero, -t)
    got = ranking_loss(c, h, margin_sign="official")
    assert got.item() == pytest.approx(ref.item(), abs=1e-7) and got.item() > 0


def test_ranking_loss_plus():
    # sample 0 has the smaller history loss but the lower confidence -> penalised
    conf = torch.tensor([0.1, 0.5])
    hist = torch.tensor([0.2, 0.6])
    # pair (0,1): T=-1, m=0.4: max(0, 0.4+0.4)=0.8 ; pair (1,0): T=+1: max(0, 0.4+0.4)=0.8
    assert ranking_loss(conf, hist, margin_sign="plus").item() == pytest.approx(0.8)
    # official: max(0, 0.4 - 0.4) = 0 for both pairs
    assert ranking_loss(conf, hist, margin_sign="official").item() == pytest.approx(0.0)
    # swapped confidences with a gap above the margin -> zero
    plus = {"margin_sign": "plus"}
    assert ranking_loss(torch.tensor([0.9, 0.1]), hist, **plus).item() == pytest.approx(0.0)
    # correct order but gap below the margin -> margin violation 0.4 - 0.3 = 0.1
    assert ranking_loss(torch.tensor([0.4, 0.1]), hist, **plus).item() == pytest.approx(0.1)
    # ties give zero
    assert ranking_loss(conf, torch.tensor([0.3, 0.3]), **plus).item() == 0.0
    # no valid pair
    assert ranking_loss(conf, hist, torch.tensor([True, False]), **plus).item() == 0.0


def test_history_update_normalize_state():
    h = LossHistory(["a", "v"], 4)
    h.update("a", torch.tensor([0, 1, 2]), torch.tensor([1.0, 2.0, 4.0]))
    h.update("a", torch.tensor([0]), torch.tensor([1.0]))
    assert torch.equal(h.buffers["a"], torch.tensor([2.0, 2.0, 4.0, 0.0], dtype=torch.float64))
    assert torch.allclose(
        h.normalized("a", torch.tensor([0, 2, 3])),
        torch.tensor([0.5, 1.0, 0.0], dtype=torch.float64),
    )
    assert torch.equal(h.normalized("v", torch.tensor([0, 1])), torch.zeros(2, dtype=torch.float64))
    h2 = LossHistory(["x"], 1)
    h2.load_state_dict(h.state_dict())
    assert h2.size == 4 and torch.equal(h2.buffers["a"], h.buffers["a"])
    h.update("a", torch.tensor([3]), torch.tensor([1.0]))
    assert h2.buffers["a"][3] == 0  # state is a copy


def test_qmf_loss_terms_and_hook():
    torch.manual_seed(0)
    B, C = 4, 3
    uni = {"a": torch.randn(B, C, requires_grad=True), "v": torch.randn(B, C, requires_grad=True)}
    fused, _ = qmf_fuse(uni, temperature=T, detach=True)
    y = torch.tensor([0, 1, 2, 0])
    idx = torch.tensor([3, 0, 2, 1])
    hist = LossHistory(["a", "v"], 5)
    hist.update("a", torch.arange(5), torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0]))
    loss, per = qmf_loss(
        uni,
        fused,
        y,
        idx,
        hist,
        fused_ce=True,
        rank_weight=0.1,
        temperature=T,
        rank_margin_sign="plus",
    )
    expect = F.cross_entropy(fused, y) + sum(F.cross_entropy(f, y) for f in uni.values())
    for m in ("a", "v"):
        expect = expect + 0.1 * ranking_loss(
            energy_confidence(uni[m], temperature=T), hist.normalized(m, idx), margin_sign="plus"
        )
    assert loss.item() == pytest.approx(expect.item(), rel=1e-6)
    loss_nf, _ = qmf_loss(
        uni,
        None,
        y,
        idx,
        hist,
        fused_ce=False,
        rank_weight=0.1,
        temperature=T,
        rank_margin_sign="plus",
    )
    assert loss_nf.item() == pytest.approx((expect - F.cross_entropy(fused, y)).item(), rel=1e-6)
    # the rank term reaches the unimodal logits (non-detached confidence)
    r = ranking_loss(
        energy_confidence(uni["a"], temperature=T), hist.normalized("a", idx), margin_sign="plus"
    )
    assert r.item() > 0 and r.requires_grad
    assert torch.allclose(per["a"], F.cross_entropy(uni["a"], y, reduction="none").detach())
    # masked: absent samples are NaN and skipped by the hook
    present = torch.tensor([[True, True], [True, False], [True, True], [True, True]])
    _, per = qmf_loss(
        uni,
        fused,
        y,
        idx,
        hist,
        present=present,
        fused_ce=True,
        rank_weight=1.0,
        temperature=T,
        rank_margin_sign="official",
    )
    assert math.isnan(per["v"][1].item())
    hook = QMFHistoryHook(LossHistory(["a", "v"], 4))
    step = Step(
        loss=loss,
        outputs={"qmf_sample_losses": per},
        batch={"targets": y, "index": idx},
        epoch=1,
        num_batches=1,
    )
    hook.on_after_optimizer_step(step)
    hook.on_after_optimizer_step(step)
    vb = hook.history.buffers["v"]
    assert vb[0] == 0 and vb[3] == pytest.approx(2 * per["v"][0].item())
    hook2 = QMFHistoryHook(LossHistory(["a", "v"], 4))
    hook2.load_state_dict(hook.state_dict())
    assert torch.equal(hook2.history.buffers["a"], hook.history.buffers["a"])
