import pytest
import torch

from mla_plugin.core.fusion_heads import (
    BiGatedHead,
    ConcatHead,
    FiLMHead,
    LateFusionHead,
    QMFHead,
    SumHead,
)
from mla_plugin.core.qmf import energy_confidence

MODS = ["a", "v"]


def _feats():
    return {"a": torch.tensor([[1.0, 2.0]]), "v": torch.tensor([[3.0, -1.0]])}


def _set(lin, w, b):
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(w))
        lin.bias.copy_(torch.tensor(b))


def test_concat_slices_and_bias_over_m():
    head = ConcatHead(MODS, 2, 2)
    _set(head.fc, [[1.0, 0.0, 2.0, 0.0], [0.0, 1.0, 0.0, 1.0]], [0.4, -0.2])
    fused, uni = head(_feats())
    assert torch.allclose(fused, torch.tensor([[1 + 6 + 0.4, 2 - 1 - 0.2]]))
    assert torch.allclose(uni["a"], torch.tensor([[1 + 0.2, 2 - 0.1]]))
    assert torch.allclose(uni["v"], torch.tensor([[6 + 0.2, -1 - 0.1]]))
    # absent v: zero-filled
    fused, _ = head(_feats(), torch.tensor([[True, False]]))
    assert torch.allclose(fused, torch.tensor([[1 + 0.4, 2 - 0.2]]))


def test_sum_and_late_fusion():
    for cls in (SumHead, LateFusionHead):
        head = SumHead(MODS, 2, 2, unimodal_bias="full") if cls is SumHead else cls(MODS, 2, 2)
        _set(head.heads["a"], [[1.0, 0.0], [0.0, 1.0]], [1.0, 0.0])
        _set(head.heads["v"], [[1.0, 1.0], [0.0, 0.0]], [0.0, 2.0])
        fused, uni = head(_feats())
        assert torch.allclose(uni["a"], torch.tensor([[2.0, 2.0]]))
        assert torch.allclose(uni["v"], torch.tensor([[2.0, 2.0]]) + torch.tensor([[0.0, 0.0]]))
        scale = 1.0 if cls is SumHead else 0.5
        assert torch.allclose(fused, scale * torch.tensor([[4.0, 4.0]]))
        fused, _ = head(_feats(), torch.tensor([[False, True]]))
        assert torch.allclose(fused, torch.tensor([[2.0, 2.0]]))  # only v, for sum and mean
    head = SumHead(MODS, 2, 2, unimodal_bias="div_m")
    _set(head.heads["a"], [[1.0, 0.0], [0.0, 1.0]], [1.0, 0.0])
    _set(head.heads["v"], [[1.0, 1.0], [0.0, 0.0]], [0.0, 2.0])
    fused, uni = head(_feats())
    assert torch.allclose(uni["a"], torch.tensor([[1.5, 2.0]]))
    assert torch.allclose(uni["v"], torch.tensor([[2.0, 1.0]]))
    assert torch.allclose(fused, torch.tensor([[4.0, 4.0]]))


def test_film_modulation():
    head = FiLMHead(MODS, 2, 2, conditioning="a", extension="chain")
    # gamma = [h_a0, h_a1] + [0, 1], beta = [1, -1]
    _set(head.film, [[1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [0.0, 0.0]], [0.0, 1.0, 1.0, -1.0])
    _set(head.fc_out, [[1.0, 0.0], [0.0, 1.0]], [0.0, 0.0])
    fused, uni = head(_feats())
    # gamma = [1, 3], beta = [1, -1]; z = [1*3+1, 3*(-1)-1]
    assert torch.allclose(fused, torch.tensor([[4.0, -4.0]]))
    # unimodal a: v zeroed -> z = beta; unimodal v: a zeroed -> gamma=[0,1], beta=[1,-1]
    assert torch.allclose(uni["a"], torch.tensor([[1.0, -1.0]]))
    assert torch.allclose(uni["v"], torch.tensor([[1.0, -2.0]]))
    fused, _ = head(_feats(), torch.tensor([[False, True]]))
    assert torch.allclose(fused, uni["v"])
    # conditioning on v instead changes the result
    head_v = FiLMHead(MODS, 2, 2, conditioning="v", extension="chain")
    head_v.load_state_dict(head.state_dict())
    assert not torch.allclose(head_v(_feats())[0], fused)


def test_film_three_modal_extensions():
    feats = {
        "a": torch.tensor([[1.0, 2.0]]),
        "v": torch.tensor([[3.0, -1.0]]),
        "t": torch.tensor([[1.0, 1.0]]),
    }
    out = {}
    for ext in ("chain", "pairwise_sum"):
        head = FiLMHead(["a", "v", "t"], 2, 2, conditioning="first", extension=ext)
        _set(head.film, [[1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [0.0, 0.0]], [0.0, 1.0, 1.0, -1.0])
        _set(head.fc_out, [[1.0, 0.0], [0.0, 1.0]], [0.0, 0.0])
        out[ext] = head(feats)[0]
    # gamma=[1,3], beta=[1,-1]; chain: mean(v,t)=[2,0] -> [3,-1]; pairwise: [4,-4]+[2,2]
    assert torch.allclose(out["chain"], torch.tensor([[3.0, -1.0]]))
    assert torch.allclose(out["pairwise_sum"], torch.tensor([[6.0, -2.0]]))


def test_bigated_gate():
    head = BiGatedHead(MODS, 2, 2, gate="a", extension="chain")
    _set(head.hidden["a"], [[0.0, 0.0], [0.0, 0.0]], [0.0, 100.0])  # gate = [0.5, ~1]
    _set(head.hidden["v"], [[1.0, 0.0], [0.0, 1.0]], [0.0, 0.0])  # u_v = h_v
    _set(head.fc_out, [[1.0, 0.0], [0.0, 1.0]], [0.0, 0.0])
    fused, uni = head(_feats())
    assert torch.allclose(fused, torch.tensor([[1.5, -1.0]]))
    gate = torch.sigmoid(torch.tensor([0.0, 100.0]))
    assert torch.allclose(uni["v"], gate * torch.tensor([[3.0, -1.0]]))
    assert torch.allclose(uni["a"], torch.zeros(1, 2))  # v zeroed, its hidden = bias = 0
    _set(head.hidden["a"], [[1.0, 0.0], [0.0, 0.0]], [0.0, 0.0])  # gate from h_a0 = 1
    fused, _ = head(_feats())
    assert torch.allclose(
        fused, torch.tensor([[3.0 * torch.sigmoid(torch.tensor(1.0)).item(), -0.5]])
    )
    fused_abs, _ = head(_feats(), torch.tensor([[False, True]]))  # a absent -> gate 0.5
    assert torch.allclose(fused_abs, torch.tensor([[1.5, -0.5]]))


def test_qmf_head():
    head = QMFHead(MODS, 2, 3, temperature=10.0, detach=True)
    f = _feats()
    fused, uni = head(f)
    conf = head.confidences(uni)
    expect = sum(conf[m].detach().unsqueeze(1) * uni[m] for m in MODS)
    assert torch.allclose(fused, expect)
    assert torch.allclose(head.last_weights["a"], energy_confidence(uni["a"], temperature=10.0))
    fused, _ = head(f, torch.tensor([[True, False]]))
    assert torch.allclose(fused, conf["a"].unsqueeze(1) * uni["a"])


def test_bad_args():
    with pytest.raises(ValueError):
        FiLMHead(MODS, 2, 2, conditioning="x", extension="chain")
    with pytest.raises(ValueError):
        BiGatedHead(MODS, 2, 2, gate="first", extension="nope")
