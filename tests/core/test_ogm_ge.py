import math

import pytest
import torch
from torch import nn

from mla_plugin.core.hooks import Step
from mla_plugin.core.ogm_ge import OGMGEHook, discrepancy_scores, modulation_coefficients


def test_scores_hand_computed_and_masked():
    # logits [0, ln3] -> softmax [0.25, 0.75]
    logits = torch.tensor([[0.0, math.log(3.0)], [0.0, math.log(3.0)]])
    targets = torch.tensor([1, 0])
    s = discrepancy_scores({"a": logits, "v": logits}, targets)
    assert s["a"].item() == pytest.approx(1.0)
    mask = torch.tensor([[True, True], [True, False]])
    s = discrepancy_scores({"a": logits, "v": logits}, targets, mask)
    assert s["a"].item() == pytest.approx(1.0) and s["v"].item() == pytest.approx(0.75)


def test_two_modal_coefficient():
    def k_of(a, v, alpha):  # with two modalities both extensions agree
        return modulation_coefficients(
            {"a": torch.tensor(a), "v": torch.tensor(v)}, alpha=alpha, extension="others_sum"
        )

    k = k_of(3.0, 1.0, alpha=0.8)
    assert k["a"] == pytest.approx(1 - math.tanh(2.4)) and k["v"] == 1.0
    k = k_of(1.0, 4.0, alpha=0.5)
    assert k["v"] == pytest.approx(1 - math.tanh(2.0)) and k["a"] == 1.0
    k = k_of(2.0, 2.0, alpha=0.5)
    assert k == {"a": 1.0, "v": 1.0}


def test_three_modal_extensions():
    s = {"a": torch.tensor(1.0), "v": torch.tensor(4.0), "t": torch.tensor(2.0)}
    k = modulation_coefficients(s, alpha=0.3, extension="others_sum")  # rho_v = 4/3
    assert k["v"] == pytest.approx(1 - math.tanh(0.4)) and k["a"] == 1.0 and k["t"] == 1.0
    # rho_v = 4/1.5, rho_t = 2/2.5, rho_a < 1
    k = modulation_coefficients(s, alpha=0.3, extension="mean_others")
    assert k["v"] == pytest.approx(1 - math.tanh(0.3 * 4 / 1.5)) and k["t"] == 1.0
    # balanced: nobody suppressed (unlike the MLA code, which would suppress 'a')
    s = {"a": torch.tensor(1.0), "v": torch.tensor(1.0), "t": torch.tensor(1.0)}
    k = modulation_coefficients(s, alpha=0.3, extension="others_sum")
    assert k == {"a": 1.0, "v": 1.0, "t": 1.0}
    s = {"a": torch.tensor(3.0), "v": torch.tensor(3.0), "t": torch.tensor(1.0)}
    k = modulation_coefficients(s, alpha=0.3, extension="mean_others")  # rho_a = rho_v = 1.5
    assert k["a"] == pytest.approx(1 - math.tanh(0.45)) == pytest.approx(k["v"]) and k["t"] == 1.0


class Enc(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3)
        self.lin = nn.Linear(4, 4)


# Every switch of the hook spelled out (it has no defaults); each test overrides what it studies.
SWITCHES = dict(
    alpha=0.8,
    start_epoch=0,
    end_epoch=50,
    params="all",
    ge=False,
    seed=0,
    extension="others_sum",
    ge_scope="modulated",
)


def _hook(enc, **switches):
    return OGMGEHook(enc, **{**SWITCHES, **switches})


def _setup(seed=0):
    torch.manual_seed(seed)
    enc = {"a": Enc(), "v": Enc()}
    grads = {}
    for m, e in enc.items():
        for n, p in e.named_parameters():
            p.grad = torch.randn_like(p)
            grads[(m, n)] = p.grad.clone()
    # a dominant: scores 3 vs 1 -> logits with prob on target for a, weak for v
    B = 4
    targets = torch.zeros(B, dtype=torch.long)
    la = torch.tensor([[math.log(3.0), 0.0]]).repeat(B, 1)  # p=0.75 -> s_a=3
    lv = torch.tensor([[0.0, math.log(3.0)]]).repeat(B, 1)  # p=0.25 -> s_v=1
    return enc, grads, targets, {"a": la, "v": lv}


def _step(epoch, targets, uni):
    return Step(
        loss=torch.tensor(0.0),
        outputs={"modality_scores": uni},
        batch={"targets": targets, "index": torch.arange(len(targets))},
        epoch=epoch,
        num_batches=1,
    )


def test_hook_scales_dominant_only_and_window():
    enc, grads, targets, uni = _setup()
    hook = _hook(enc, start_epoch=0, end_epoch=1, ge=False)
    hook.on_before_optimizer_step(_step(1, targets, uni))
    k = 1 - math.tanh(2.4)
    assert hook.last_coefficients["a"] == pytest.approx(k)
    for (m, n), g in grads.items():
        p = dict(enc[m].named_parameters())[n]
        assert torch.allclose(p.grad, g * (k if m == "a" else 1.0))
    enc, grads, targets, uni = _setup()
    hook = _hook(enc, start_epoch=0, end_epoch=1, ge=False)
    hook.on_before_optimizer_step(_step(3, targets, uni))  # epoch0 = 2 > end
    assert hook.last_coefficients == {}
    for (m, n), g in grads.items():
        assert torch.equal(dict(enc[m].named_parameters())[n].grad, g)
    hook = _hook(enc, start_epoch=1, end_epoch=5, ge=False)
    hook.on_before_optimizer_step(_step(1, targets, uni))  # epoch0 = 0 < start
    assert hook.last_coefficients == {}


def test_conv_only_touches_4d():
    enc, grads, targets, uni = _setup()
    hook = _hook(enc, params="conv_only", ge=False)
    hook.on_before_optimizer_step(_step(1, targets, uni))
    k = 1 - math.tanh(2.4)
    for (m, n), g in grads.items():
        p = dict(enc[m].named_parameters())[n]
        factor = k if (m == "a" and g.dim() == 4) else 1.0
        assert torch.allclose(p.grad, g * factor)


def test_ge_noise_std_and_resume():
    torch.manual_seed(1)
    enc = {"a": nn.Linear(400, 500, bias=False), "v": nn.Linear(3, 3)}
    g0 = torch.randn(500, 400) * 2.0
    targets, uni = _setup()[2:]
    hook = _hook(enc, ge=True, seed=7)
    state = hook.state_dict()
    enc["a"].weight.grad = g0.clone()
    gv = torch.randn(3, 3)
    enc["v"].weight.grad = gv.clone()
    hook.on_before_optimizer_step(_step(1, targets, uni))
    k = hook.last_coefficients["a"]
    noise = enc["a"].weight.grad - k * g0
    assert noise.std().item() == pytest.approx(g0.std().item(), rel=0.02)
    assert abs(noise.mean().item()) < 0.02
    assert torch.equal(enc["v"].weight.grad, gv)  # k = 1: no noise with ge_scope "modulated"
    # resume from the saved generator state reproduces the noise exactly
    hook2 = _hook(enc, ge=True, seed=123)
    hook2.load_state_dict(state)
    first = enc["a"].weight.grad.clone()
    enc["a"].weight.grad = g0.clone()
    hook2.on_before_optimizer_step(_step(1, targets, uni))
    assert torch.equal(enc["a"].weight.grad, first)


def test_ge_scope_all_adds_noise_to_unmodulated():
    enc, grads, targets, uni = _setup()
    hook = _hook(enc, ge=True, ge_scope="all")
    hook.on_before_optimizer_step(_step(1, targets, uni))
    p = enc["v"].conv.weight
    assert not torch.allclose(p.grad, grads[("v", "conv.weight")])
