import math

import pytest
import torch
from torch import nn

from mla_plugin.core.greedy import MMTM, ConditionalSpeed, learning_speeds


def _speed(**kw):
    return ConditionalSpeed(["a", "v"], **{"threshold": 0.01, "window": 5, "start_epoch": 0, **kw})


def test_card_example_opens_a_window_for_modality_0():
    # bypass_0 = 0.02, main_0 = 0.01, bypass_1 = main_1 = 0.01: BDR_0 = log10 2 = 0.30103,
    # BDR_1 = 0, d = 0.301 > 0.01 -> the next 5 steps re-balance modality 0
    s = _speed()
    s.after_step({"a": 0.02, "v": 0.01}, {"a": 0.01, "v": 0.01}, epoch0=0)
    assert s.bdr()["a"] == pytest.approx(math.log10(2)) and s.bdr()["v"] == 0.0
    assert s.caring == "a" and s.left == 5
    for _ in range(4):
        s.after_step({"a": 0.0, "v": 0.0}, {"a": 0.0, "v": 0.0}, epoch0=0)
        assert s.caring == "a"
    s.after_step({"a": 0.0, "v": 0.0}, {"a": 0.0, "v": 0.0}, epoch0=0)
    assert s.caring is None and s.left == 0  # five re-balancing steps, then normal again
    s.after_step({"a": 0.0, "v": 0.0}, {"a": 0.0, "v": 0.0}, epoch0=0)
    assert s.caring == "a"  # the cumulative speeds still differ: a new window


def test_threshold_start_epoch_sign_and_three_modalities():
    s = _speed(threshold=0.5)  # d = 0.301 < 0.5: no window
    s.after_step({"a": 0.02, "v": 0.01}, {"a": 0.01, "v": 0.01}, epoch0=0)
    assert s.caring is None
    s = _speed(start_epoch=2)
    s.after_step({"a": 0.02, "v": 0.01}, {"a": 0.01, "v": 0.01}, epoch0=1)
    assert s.caring is None
    s.after_step({"a": 0.0, "v": 0.0}, {"a": 0.0, "v": 0.0}, epoch0=2)
    assert s.caring == "a"
    s = _speed()  # d < 0: modality 1
    s.after_step({"a": 0.01, "v": 0.03}, {"a": 0.01, "v": 0.01}, epoch0=0)
    assert s.caring == "v"
    s = ConditionalSpeed(["a", "v", "t"], threshold=0.01, window=5, start_epoch=0)
    s.after_step({"a": 0.01, "v": 0.01, "t": 0.05}, {"a": 0.01, "v": 0.02, "t": 0.01}, 0)
    assert s.caring == "t"  # the largest BDR
    state = s.state_dict()
    s2 = ConditionalSpeed(["a", "v", "t"], threshold=0.01, window=5, start_epoch=0)
    s2.load_state_dict(state)
    assert s2.state_dict() == state


def test_learning_speed_ratio():
    w = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        w.weight.copy_(torch.tensor([[2.0, 0.0]]))  # |W|^2 = 4
    w.weight.grad = torch.tensor([[1.0, 1.0]])  # |g|^2 = 2
    speeds = learning_speeds({"x": [w.weight], "none": []})
    assert speeds == {"x": pytest.approx(0.5), "none": 0.0}


def test_mmtm_running_gate_and_constant_gate():
    torch.manual_seed(0)
    block = MMTM(["a", "v"], 3, ratio=2)
    f1 = {"a": torch.randn(4, 3), "v": torch.randn(4, 3)}
    f2 = {"a": torch.randn(4, 3), "v": torch.randn(4, 3)}
    block.train()

    def gates(f):
        z = torch.relu(block.squeeze(torch.cat([f["a"], f["v"]], 1)))
        return {m: 2 * torch.sigmoid(block.excite[m](z)).mean(0) for m in ("a", "v")}

    g1, g2 = gates(f1), gates(f2)
    block(f1)
    block(f2)
    assert int(block.gate_steps) == 2
    assert torch.allclose(block.gate_mean[0], (g1["a"] + g2["a"]) / 2, atol=1e-6)
    out = block(f1, constant="a")  # a's gate is the running mean: input-independent
    assert torch.allclose(out["a"], f1["a"] * block.gate_mean[0], atol=1e-6)
    assert int(block.gate_steps) == 2  # re-balancing steps do not update the average
    block.eval()
    block(f1)
    assert int(block.gate_steps) == 2  # nor does evaluation
