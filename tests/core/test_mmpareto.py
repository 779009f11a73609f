"""MMPareto's rule by hand (the card's example), its switches, and the model's step."""

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from mla_plugin.core.hooks import Step
from mla_plugin.core.mmpareto import MULTIMODAL_GRADS, MMParetoHook, combine, pareto_weights
from tests.support import make_trainer

T = torch.tensor


def test_conflict_takes_the_min_norm_weights_and_the_magnitude_rule():
    # g_mm = (1, 0), g_u = (-1, 1): cos < 0; k1 = (g_u.g_u - g_mm.g_u) / |g_mm - g_u|^2
    # = (2 - (-1)) / (4 + 1) = 0.6; g~ = 2(0.6 g_mm + 0.4 g_u) = (0.4, 0.8), |g~| = 0.894 <
    # |g_sum| = |(0, 1)| = 1, so g~ is stretched to norm 1 and multiplied by 1.5
    g_mm, g_u = T([1.0, 0.0]), T([-1.0, 1.0])
    k1, k2, conflict = pareto_weights(g_mm, g_u)
    assert conflict and k1 == pytest.approx(0.6) and k2 == pytest.approx(0.4)
    g = combine(g_mm, g_u, g_mm + g_u, k1, k2, 1.5)
    assert g.tolist() == pytest.approx([1.5 / math.sqrt(5), 3.0 / math.sqrt(5)])  # 0.6708, 1.3416


def test_agreement_takes_the_plain_average_and_the_clip():
    # cos > 0: (1/2, 1/2); g~ = g_mm + g_u = g_sum, no stretch; x 1.5
    g_mm, g_u = T([1.0, 0.0]), T([1.0, 1.0])
    k1, k2, conflict = pareto_weights(g_mm, g_u)
    assert (k1, k2, conflict) == (0.5, 0.5, False)
    assert combine(g_mm, g_u, g_mm + g_u, k1, k2, 1.5).tolist() == pytest.approx([3.0, 1.5])
    # opposite, g_u much longer: (100 + 10) / 121 = 0.909 inside the clip; g_u = 0 counts as
    # no conflict; a tiny g_mm against g_u: k1 is clipped:
    # (1 + 1e-3) / (1.001)^2 = 0.999001 -> 0.999, and the mirror case 0.000999 -> 0.001
    assert pareto_weights(T([1.0]), T([-10.0]))[0] == pytest.approx(110 / 121)
    assert pareto_weights(T([1.0]), T([0.0])) == (0.5, 0.5, False)
    assert pareto_weights(T([1e-3]), T([-1.0]))[0] == pytest.approx(0.999)  # not 0.999001
    assert pareto_weights(T([1.0]), T([-1e-3]))[0] == pytest.approx(0.001)  # not 0.000999


class Enc(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(2))


def _step(hook, encoders, sums, g_mms, epoch=1):
    for m, e in encoders.items():
        e.w.grad = sums[m].clone()
    outputs = {MULTIMODAL_GRADS: {m: [g] for m, g in g_mms.items()}} if g_mms else {}
    hook.on_before_optimizer_step(Step(loss=T(0.0), outputs=outputs, epoch=epoch))
    return {m: e.w.grad.tolist() for m, e in encoders.items()}


def test_hook_replaces_each_encoder_gradient():
    enc = {"a": Enc(), "v": Enc()}
    hook = MMParetoHook(enc, gamma=1.5, zero_grads=True)
    # a: g_sum = (0, 1), g_mm = (1, 0) -> g_u = (-1, 1): the card's example;
    # v: g_sum = (2, 1), g_mm = (1, 0) -> g_u = (1, 1): no conflict, 1.5 g_sum
    got = _step(hook, enc, {"a": T([0.0, 1.0]), "v": T([2.0, 1.0])},
                {"a": T([1.0, 0.0]), "v": T([1.0, 0.0])})  # fmt: skip
    assert got["a"] == pytest.approx([0.67082, 1.34164], abs=1e-5)
    assert got["v"] == pytest.approx([3.0, 1.5])
    assert hook.summary() == {"conflict_rate": {"a": [1.0], "v": [0.0]}}
    state = hook.state_dict()
    other = MMParetoHook(enc, gamma=1.5, zero_grads=True)
    other.load_state_dict(state)
    assert other.summary() == hook.summary()


def test_balancebenchmark_switch_never_sees_a_conflict():
    # no zeroing: both recorded gradients are g_sum, so g~ = 2 g_sum and the step 3 g_sum
    enc = {"a": Enc(), "v": Enc()}
    hook = MMParetoHook(enc, gamma=1.5, zero_grads=False)
    got = _step(hook, enc, {"a": T([0.0, 1.0]), "v": T([2.0, -1.0])}, None)
    assert got == {"a": [0.0, 3.0], "v": [6.0, -3.0]}
    assert hook.summary()["conflict_rate"] == {"a": [0.0], "v": [0.0]}


def test_fp16_refused_before_training():
    hook = MMParetoHook({"a": Enc()}, gamma=1.5, zero_grads=True)
    with pytest.raises(ValueError, match="training.precision=fp16"):
        hook.setup(SimpleNamespace(precision="fp16"))
    hook.setup(SimpleNamespace(precision="bf16"))


TINY = [
    "dataset_config.synthetic.sizes.train=32",
    "dataset_config.synthetic.sizes.val=16",
    "dataset_config.synthetic.sizes.test=16",
    "training.batch_size=16",
]


def test_model_records_the_fused_gradient_and_trains_separate_heads(tmp_path):
    trainer = make_trainer(str(tmp_path), "model=mmpareto", *TINY)
    model = trainer.ctx.model
    assert set(model.unimodal_heads) == set(model.modalities)
    batch = next(iter(trainer.ctx.train_loader))
    torch.manual_seed(0)
    step = next(model.training_steps(batch, 0))
    recorded = step.outputs[MULTIMODAL_GRADS]
    # the recorded g_mm is the gradient of the fused CE alone (same forward, no dropout)
    l_mm = torch.nn.functional.cross_entropy(step.outputs["scores"], batch.targets)
    m = model.modalities[0]
    expected = torch.autograd.grad(l_mm, list(model.encoders[m].parameters()), retain_graph=True)
    assert all(torch.allclose(r, e) for r, e in zip(recorded[m], expected, strict=True))
    # the unimodal scores are the separate heads'
    h = step.outputs["features"][m]
    assert torch.equal(step.outputs["modality_scores"][m], model.unimodal_heads[m](h))


def test_slices_switch_and_bad_value(tmp_path):
    trainer = make_trainer(str(tmp_path / "s"), "model=mmpareto", *TINY,
                           "model_config.mmpareto.mmpareto_heads=slices")  # fmt: skip
    assert not hasattr(trainer.ctx.model, "unimodal_heads")
    with pytest.raises(
        Exception, match="mmpareto_heads = 'shared' is outside its declared choices"
    ):
        make_trainer(str(tmp_path / "b"), "model=mmpareto", *TINY,
                     "model_config.mmpareto.mmpareto_heads=shared")  # fmt: skip
