import math

import pytest
import torch

from mla_plugin.core.mmcosine import CosineHead, cosine_logits


def _head(scale):
    head = CosineHead(["a", "v"], 2, 2, scale=scale)
    with torch.no_grad():
        head.weights["a"].copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
        head.weights["v"].copy_(torch.tensor([[1.0, 1.0], [-1.0, 1.0]]))
    return head


def test_card_example():
    # h_a = (3, 4), rows (1, 0) and (0, 2): cosines (0.6, 0.8); s = 15 -> (9, 12).
    # h_v = 0 has cosine 0 with every row, so z = (9, 12) and p_2 = 1 / (1 + e^-3).
    head = _head(15.0)
    features = {"a": torch.tensor([[3.0, 4.0]]), "v": torch.zeros(1, 2)}
    fused, uni = head(features)
    assert uni["a"][0].tolist() == pytest.approx([9.0, 12.0])
    assert fused[0].tolist() == pytest.approx([9.0, 12.0])
    assert torch.softmax(fused, 1)[0, 1].item() == pytest.approx(0.95257, abs=1e-5)


def test_fused_is_the_sum_and_absent_modality_is_left_out():
    head = _head(10.0)  # the scale switch: the same cosines times 10
    features = {"a": torch.tensor([[3.0, 4.0], [3.0, 4.0]]), "v": torch.tensor([[0.0, 2.0]] * 2)}
    # v: cos with (1,1)/sqrt2 and (-1,1)/sqrt2 is 1/sqrt2 each -> 10/sqrt2
    c = 10 / math.sqrt(2)
    mask = torch.tensor([[True, True], [True, False]])
    fused, uni = head(features, mask)
    assert uni["v"][0].tolist() == pytest.approx([c, c])
    assert fused[0].tolist() == pytest.approx([6.0 + c, 8.0 + c])
    assert fused[1].tolist() == pytest.approx([6.0, 8.0])  # v absent: a only


def test_cosine_ignores_norms_and_bad_scale_is_refused():
    h, w = torch.tensor([[3.0, 4.0]]), torch.tensor([[1.0, 0.0]])
    assert torch.allclose(cosine_logits(h * 7, w * 0.1, 2.0), cosine_logits(h, w, 2.0))
    with pytest.raises(ValueError, match="scale"):
        CosineHead(["a", "v"], 2, 2, scale=0.0)
