"""Missing-modality protocol: realised rate, at-least-one, determinism, seeds, bad args."""

import numpy as np
import pytest

from mla_plugin.data.missing import MASK_SCHEMES, carve_mask, make_presence_mask, split_seed

RATES = [0.0, 0.1, 0.3, 0.5, 0.6, 0.7]


@pytest.mark.parametrize("m", [2, 3])
@pytest.mark.parametrize("rate", RATES)
def test_cpm_rate_and_at_least_one(rate, m):
    mask = make_presence_mask(1000, m, rate, "cpm_atleast1", seed=1)
    assert mask.shape == (1000, m) and mask.dtype == bool
    assert mask.any(axis=1).all()
    expected = min(rate, (m - 1) / m)  # capped: each sample keeps >= 1 modality
    assert abs((~mask).mean() - expected) < 0.005


def test_cpm_high_rate_keeps_exactly_one_uniformly():
    mask = make_presence_mask(3000, 3, 0.7, "cpm_atleast1", seed=2)
    assert (mask.sum(axis=1) == 1).all()
    assert np.allclose(mask.mean(axis=0), 1 / 3, atol=0.04)


@pytest.mark.parametrize("rate", [0.1, 0.3, 0.5, 0.7])
def test_bernoulli_rate(rate):
    mask = make_presence_mask(20000, 3, rate, "bernoulli", seed=3)
    assert abs((~mask).mean() - rate) < 0.01


def test_bernoulli_can_drop_all():
    mask = make_presence_mask(5000, 2, 0.5, "bernoulli", seed=0)
    assert (~mask.any(axis=1)).any()


@pytest.mark.parametrize("scheme", MASK_SCHEMES)
def test_rate_zero_all_present(scheme):
    assert make_presence_mask(50, 3, 0.0, scheme, seed=5).all()


@pytest.mark.parametrize("scheme", MASK_SCHEMES)
def test_deterministic_and_seed_dependent(scheme):
    a = make_presence_mask(500, 3, 0.4, scheme, seed=7)
    b = make_presence_mask(500, 3, 0.4, scheme, seed=7)
    c = make_presence_mask(500, 3, 0.4, scheme, seed=8)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_does_not_touch_global_rng():
    np.random.seed(123)
    before = np.random.random()
    np.random.seed(123)
    make_presence_mask(100, 3, 0.5, seed=0)
    assert np.random.random() == before


def test_split_seeds_distinct_and_stable():
    seeds = {s: split_seed(0, s) for s in ("train", "val", "test")}
    assert len(set(seeds.values())) == 3
    assert seeds["train"] == split_seed(0, "train")
    assert split_seed(1, "train") != seeds["train"]
    masks = [make_presence_mask(500, 3, 0.5, seed=s) for s in seeds.values()]
    assert not np.array_equal(masks[0], masks[1]) and not np.array_equal(masks[1], masks[2])


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5])
def test_bad_rate(rate):
    with pytest.raises(ValueError, match="missing rate"):
        make_presence_mask(10, 3, rate)


def test_bad_scheme_lists_valid():
    with pytest.raises(ValueError, match="cpm_atleast1, bernoulli"):
        make_presence_mask(10, 3, 0.1, scheme="cpm")


def test_bad_sizes():
    with pytest.raises(ValueError):
        make_presence_mask(10, 0, 0.1)
    assert make_presence_mask(0, 3, 0.5).shape == (0, 3)


def test_carve_mask_seeded_fraction():
    a = carve_mask(np.random.default_rng(5), 40, 0.25)
    b = carve_mask(np.random.default_rng(5), 40, 0.25)
    assert a.dtype == bool and a.sum() == 10 and np.array_equal(a, b)
    assert not carve_mask(np.random.default_rng(5), 3, 0.0).any()
