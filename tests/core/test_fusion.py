import math

import pytest
import torch

from mla_plugin.core.fusion import (
    CODE_FIXED_WEIGHTS,
    ENTROPY_MODES,
    RULES,
    code_batch_dim0_weights,
    entropy,
    entropy_weights,
    fixed_weights,
    fuse,
    fuse_logits,
    mean_weights,
)


def _logits(m=2, b=5, c=4, seed=0, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(m, b, c, generator=g, dtype=torch.float64) * scale


def test_entropy_values_and_stability():
    assert entropy(torch.zeros(3, 5)).tolist() == pytest.approx([math.log(5)] * 3)
    big = torch.tensor([[1e4, 0.0, -1e4], [1e30, 1e30, 0.0]])
    e = entropy(big)
    assert torch.isfinite(e).all()
    assert e.tolist() == pytest.approx([0.0, math.log(2)], abs=1e-6)


def test_per_sample_weights_sum_to_one_and_favour_low_entropy():
    logits = _logits(m=3, b=6)
    w = entropy_weights(logits)
    assert w.shape == (6, 3)
    torch.testing.assert_close(w.sum(1), torch.ones(6, dtype=w.dtype))
    e = entropy(logits).T  # [B, M]
    assert torch.equal(w.argmax(1), e.argmin(1))


def test_hand_computed_two_modality_example():
    # modality 0 uniform over 2 classes; modality 1 has p = (3/4, 1/4)
    logits = torch.tensor([[[0.0, 0.0]], [[math.log(3.0), 0.0]]])
    e0, e1 = math.log(2), -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    z = math.exp(-e0) + math.exp(-e1)
    w = entropy_weights(logits)
    assert w[0].tolist() == pytest.approx([math.exp(-e0) / z, math.exp(-e1) / z])
    # Eq. 7's max-shifted form gives the same numbers
    top = max(e0, e1)
    shifted = [math.exp(top - e0), math.exp(top - e1)]
    assert w[0].tolist() == pytest.approx([s / sum(shifted) for s in shifted])


def test_per_sample_weights_ignore_batch_mates_but_code_weights_do_not():
    a, b = _logits(seed=1), _logits(seed=2)
    b[:, 0] = a[:, 0]  # sample 0 identical, the other samples differ
    torch.testing.assert_close(entropy_weights(a)[0], entropy_weights(b)[0])
    code_a, code_b = code_batch_dim0_weights(a), code_batch_dim0_weights(b)
    assert not torch.allclose(code_a[0], code_b[0])
    assert torch.equal(code_a, code_a[:1].expand_as(code_a))  # one weight vector per batch


def test_code_batch_dim0_matches_direct_formula():
    logits = _logits(m=2, b=4, c=3, seed=3)
    e = []
    for m in range(2):
        p = torch.exp(logits[m]) / torch.exp(logits[m]).sum(0, keepdim=True)  # softmax over batch
        e.append(-(p * torch.log(p)).sum())
    e = torch.stack(e)
    expected = torch.exp(e.max() - e) / torch.exp(e.max() - e).sum()
    torch.testing.assert_close(code_batch_dim0_weights(logits), expected.expand(4, 2))


def test_absent_modalities_get_zero_and_rest_renormalise():
    logits = _logits(m=3, b=4, seed=4)
    present = torch.tensor([[1, 1, 1], [1, 0, 1], [0, 1, 0], [1, 1, 0]], dtype=torch.bool)
    e = entropy(logits).T
    for weights in (entropy_weights(logits, present), code_batch_dim0_weights(logits, present)):
        assert (weights[~present] == 0).all()
        torch.testing.assert_close(weights.sum(1), torch.ones(4, dtype=weights.dtype))
    w = entropy_weights(logits, present)
    z = torch.exp(-e[1, 0]) + torch.exp(-e[1, 2])
    torch.testing.assert_close(
        w[1, [0, 2]], torch.stack([torch.exp(-e[1, 0]), torch.exp(-e[1, 2])]) / z
    )
    assert w[2].tolist() == [0.0, 1.0, 0.0]


def test_no_modality_present_names_the_sample():
    present = torch.tensor([[1, 0], [0, 0], [0, 1]], dtype=torch.bool)
    for call in (
        lambda: entropy_weights(_logits(b=3), present),
        lambda: code_batch_dim0_weights(_logits(b=3), present),
        lambda: fixed_weights((0.5, 0.5), present),
    ):
        with pytest.raises(ValueError, match=r"\[1\]"):
            call()


def test_fixed_and_mean_weights():
    present = torch.tensor([[1, 1, 1], [1, 0, 1]], dtype=torch.bool)
    w = fixed_weights(CODE_FIXED_WEIGHTS[3], present)
    torch.testing.assert_close(w[0], torch.tensor([0.35, 0.25, 0.40]))
    torch.testing.assert_close(w[1], torch.tensor([0.35, 0.0, 0.40]) / 0.75)
    torch.testing.assert_close(
        fixed_weights((0.55, 0.45), batch_size=3), torch.tensor([[0.55, 0.45]] * 3)
    )
    torch.testing.assert_close(
        mean_weights(3, present), torch.tensor([[1 / 3] * 3, [0.5, 0.0, 0.5]])
    )
    with pytest.raises(ValueError):
        fixed_weights((0.5, 0.5))  # neither batch_size nor present


def test_fuse_logits_is_weighted_logit_sum():
    logits = _logits(m=3, b=5, seed=5)
    weights = torch.rand(5, 3, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    expected = sum(weights[:, m : m + 1] * logits[m] for m in range(3))
    torch.testing.assert_close(fuse_logits(logits, weights), expected)
    torch.testing.assert_close(fuse_logits(list(logits), weights), expected)
    logits[1, 0] = float("nan")  # an absent modality's garbage is ignored at weight 0
    weights[0, 1] = 0.0
    assert torch.isfinite(fuse_logits(logits, weights)[0]).all()


def test_fuse_dispatch_and_bad_names():
    logits = _logits(m=2, b=3, seed=7)
    fused, w = fuse(logits, rule="fixed", entropy_mode="per_sample", return_weights=True)
    torch.testing.assert_close(w, torch.tensor([[0.55, 0.45]] * 3))
    torch.testing.assert_close(fused, 0.55 * logits[0] + 0.45 * logits[1])
    torch.testing.assert_close(fuse(logits, rule="mean", entropy_mode="per_sample"), logits.mean(0))
    torch.testing.assert_close(
        fuse(logits, rule="entropy", entropy_mode="per_sample"),
        fuse_logits(logits, entropy_weights(logits)),
    )
    torch.testing.assert_close(
        fuse(logits, rule="entropy", entropy_mode="code_batch_dim0"),
        fuse_logits(logits, code_batch_dim0_weights(logits)),
    )
    with pytest.raises(ValueError) as err:
        fuse(logits, rule="max", entropy_mode="per_sample")
    assert all(r in str(err.value) for r in RULES)
    with pytest.raises(ValueError) as err:
        fuse(logits, rule="entropy", entropy_mode="per_batch")
    assert all(m in str(err.value) for m in ENTROPY_MODES)
    with pytest.raises(ValueError):
        fuse(logits, rule="fixed", entropy_mode="per_sample", fixed=(0.2, 0.3, 0.5))
