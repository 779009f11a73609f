import math

import pytest
import torch

from mla_plugin.core.ogm_ge import score_ratios
from mla_plugin.core.opm import drop_features, drop_probabilities, feature_scale


def test_card_example():
    # s_a = 1.5, s_v = 0.5: rho_a = 3, r_a = tanh(2) = 0.96403,
    # q_a = 0.4 * (1 + 0.5 * 0.96403) = 0.59281, q_v = 0;
    # theta = 512 * 0.59281 / 1024 = 0.29640, scale = 1 / (1 - theta) = 1.42127
    ratios = score_ratios({"a": torch.tensor(1.5), "v": torch.tensor(0.5)}, extension="others_sum")
    q = drop_probabilities(ratios, q_base=0.4, strength=0.5)
    assert q["a"] == pytest.approx(0.59281, abs=1e-5) and q["v"] == 0.0
    assert feature_scale(q, {"a": 512, "v": 512}) == pytest.approx(1.42127, abs=1e-5)


def test_strength_and_ties():
    q = drop_probabilities({"a": 2.0, "v": 0.5}, q_base=0.5, strength=0.0)
    assert q == {"a": 0.5, "v": 0.0}  # lambda = 0: q_base for the dominant one
    q = drop_probabilities({"a": 1.0, "v": 1.0}, q_base=0.5, strength=0.5)
    assert q == {"a": 0.0, "v": 0.0}  # balanced: nothing dropped
    q = drop_probabilities({"a": math.inf, "v": 0.0}, q_base=0.8, strength=0.5)
    assert q["a"] == 1.0  # clipped to 1


def test_three_modality_readings():
    s = {"a": torch.tensor(4.0), "v": torch.tensor(2.0), "t": torch.tensor(1.0)}
    # others_sum: rho_a = 4/3 -> only a dominant; mean_others: rho_a = 4/1.5, rho_v = 2/2.5
    q = drop_probabilities(score_ratios(s, extension="others_sum"), q_base=0.4, strength=0.5)
    assert q["a"] == pytest.approx(0.4 * (1 + 0.5 * math.tanh(1 / 3))) and q["v"] == q["t"] == 0
    q = drop_probabilities(score_ratios(s, extension="mean_others"), q_base=0.4, strength=0.5)
    assert q["a"] == pytest.approx(0.4 * (1 + 0.5 * math.tanh(4 / 1.5 - 1))) and q["v"] == 0


def test_drop_features_per_sample_vectors_and_survivors():
    features = {"a": torch.ones(4, 3), "v": 2 * torch.ones(4, 3)}
    present = torch.tensor([[True, True], [True, False], [False, True], [True, True]])
    out, survivors = drop_features(features, {"a": 1.0, "v": 0.0}, present, 2.0)
    assert torch.equal(out["a"], torch.zeros(4, 3))  # q = 1: every a vector dropped
    assert torch.equal(out["v"][:, 0], torch.tensor([4.0, 0.0, 4.0, 4.0]))  # scaled; absent 0
    assert survivors.tolist() == [True, False, True, True]  # sample 1 kept nothing present
    g = torch.Generator().manual_seed(0)
    big = {"a": torch.ones(20000, 2), "v": torch.ones(20000, 2)}
    out, _ = drop_features(big, {"a": 0.3, "v": 0.0}, None, 1.0, generator=g)
    kept = out["a"][:, 0]
    assert torch.equal(out["a"][:, 0], out["a"][:, 1])  # the whole vector, not elements
    assert kept.mean().item() == pytest.approx(0.7, abs=0.01)
