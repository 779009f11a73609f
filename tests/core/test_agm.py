"""AGM (mla_plugin/core/agm.py, mla_plugin/models/agm.py): Shapley mono-modal responses,
mono scores, the running average and the modulation coefficients, by hand."""

import math

import pytest
import torch
from torch import nn

from mla_plugin.core.agm import (
    AGMHook,
    agm_coefficients,
    coalitions,
    mono_scores,
    shapley_responses,
)
from mla_plugin.core.hooks import Step
from tests.support import make_trainer

E = math.e


def test_coefficients_card_example_and_sign_switch():
    # card 6: running t_a = t_v = 1, current s_a = 0.5, s_v = 1.5, alpha 0.1
    # official: r_a = exp(2 * (1 - 0.5)) = e, rbar_a = 1 -> k_a = exp(0.1 * (1 - e)) = 0.84212
    #           r_v = exp(2 * (1 - 1.5)) = 1/e  -> k_v = exp(0.1 * (1 - 1/e)) = 1.06525
    scores, running = {"a": 0.5, "v": 1.5}, {"a": 1.0, "v": 1.0}
    k = agm_coefficients(scores, running, alpha=0.1, cap=10.0, sign="official")
    assert k["a"] == pytest.approx(0.842124, abs=1e-6)
    assert k["v"] == pytest.approx(1.065253, abs=1e-6)
    bb = agm_coefficients(scores, running, alpha=0.1, cap=10.0, sign="balancebenchmark")
    assert bb["a"] == pytest.approx(k["v"]) and bb["v"] == pytest.approx(k["a"])  # swapped
    with pytest.raises(ValueError, match="sign"):
        agm_coefficients(scores, running, alpha=0.1, cap=10.0, sign="paper")


def test_cap_bounds_the_exponent():
    # rbar_a = exp(2 * (1.5 - 0)) = e^3 = 20.09, r_a = 1: rbar - r = 19.09 > cap
    scores, running = {"a": 1.0, "v": 1.0}, {"a": 0.0, "v": 3.0}
    k10 = agm_coefficients(scores, running, alpha=0.1, cap=10.0, sign="official")
    k7 = agm_coefficients(scores, running, alpha=0.1, cap=7.0, sign="official")
    assert k10["a"] == pytest.approx(math.exp(1.0)) and k7["a"] == pytest.approx(math.exp(0.7))
    # v: rbar_v = e^-3, r_v = 1 -> below the cap, both the same
    assert k10["v"] == pytest.approx(math.exp(0.1 * (math.exp(-3) - 1))) == k7["v"]


def _outputs(f):
    return {frozenset(k): torch.tensor([v], dtype=torch.float64) for k, v in f.items()}


def test_two_modal_shapley_with_and_without_the_empty_coalition():
    out = _outputs({"a": [2.0, 0.0], "v": [0.0, 1.0], "av": [3.0, 2.0]})
    phi = shapley_responses(out, ["a", "v"], empty_coalition="zero")
    # phi_a = 1/2 f(a) + 1/2 (f(av) - f(v)) = [1, 0] + [1.5, 0.5]
    assert phi["a"].tolist() == [[2.5, 0.5]] and phi["v"].tolist() == [[0.5, 1.5]]
    assert (phi["a"] + phi["v"]).tolist() == [[3.0, 2.0]]  # efficiency: they sum to f(a, v)
    phi = shapley_responses(out, ["a", "v"], empty_coalition="exclude")
    assert phi["a"].tolist() == [[1.5, 0.5]] and phi["v"].tolist() == [[0.5, 1.0]]


def test_three_modal_shapley_of_an_additive_game():
    g = {"a": 1.0, "b": 2.0, "c": 4.0}
    out = {S: torch.tensor([[sum(g[m] for m in S)]]) for S in coalitions("abc")}
    assert len(out) == 7  # 2^3 - 1 coalition forwards
    zero = shapley_responses(out, list("abc"), empty_coalition="zero")
    assert {m: round(float(v), 6) for m, v in zero.items()} == g  # phi_m = g_m
    # without the empty coalition's term (weight 0!2!/3! = 1/3): phi_m = 2/3 g_m
    excl = shapley_responses(out, list("abc"), empty_coalition="exclude")
    assert {m: round(float(v), 6) for m, v in excl.items()} == {
        m: round(2 / 3 * v, 6) for m, v in g.items()
    }


def test_mono_scores_are_masked_cross_entropies():
    phi = torch.tensor([[0.0, math.log(3.0)], [0.0, math.log(3.0)]])  # softmax [1/4, 3/4]
    targets = torch.tensor([1, 0])
    s = mono_scores({"a": phi, "v": phi}, targets)
    assert float(s["a"]) == pytest.approx((-math.log(0.75) - math.log(0.25)) / 2)
    mask = torch.tensor([[True, False], [True, False]])
    s = mono_scores({"a": phi, "v": phi}, targets, mask)
    assert set(s) == {"a"}  # v is in no sample: no score
    mask = torch.tensor([[True, True], [True, False]])
    s = mono_scores({"a": phi, "v": phi}, targets, mask)
    assert float(s["v"]) == pytest.approx(-math.log(0.75))


def _hook(**over):
    enc = {"a": nn.Linear(2, 2), "v": nn.Linear(2, 2)}
    head = nn.Linear(4, 2)
    kw = dict(alpha=0.1, cap=10.0, sign="official", clip=None) | over
    return AGMHook(enc, head, **kw), enc, head


def _step(scores, model=None):
    return Step(loss=torch.tensor(0.0), outputs={"agm_scores": scores}, model=model)


def test_hook_running_average_scales_gradients_and_resumes():
    hook, enc, head = _hook()
    for e in enc.values():
        for p in e.parameters():
            p.grad = torch.ones_like(p)
    hook.on_before_optimizer_step(_step({"a": torch.tensor(1.0), "v": torch.tensor(1.0)}))
    assert hook.last_coefficients == {"a": 1.0, "v": 1.0}  # t = s on the first step
    saved = hook.state_dict()
    hook.on_before_optimizer_step(_step({"a": torch.tensor(0.5), "v": torch.tensor(1.5)}))
    # t_a = 1/2 + 0.5/2 = 0.75, t_v = 1.25: rbar_a = exp(2 * 0.25), r_a = e
    k_a = math.exp(0.1 * (math.exp(0.5) - E))
    assert hook.last_coefficients["a"] == pytest.approx(k_a)  # 0.89857
    assert float(enc["a"].weight.grad[0, 0]) == pytest.approx(k_a)
    k_v = math.exp(0.1 * (math.exp(-0.5) - math.exp(-1)))
    assert float(enc["v"].bias.grad[0]) == pytest.approx(k_v)
    resumed, _, _ = _hook()
    resumed.load_state_dict(saved)
    resumed.on_before_optimizer_step(_step({"a": torch.tensor(0.5), "v": torch.tensor(1.5)}))
    assert resumed.last_coefficients == hook.last_coefficients
    # a step where one modality has no score changes nothing
    hook.on_before_optimizer_step(_step({"a": torch.tensor(0.5)}))
    assert hook.last_coefficients == {} and hook.count == 2


def test_clip_switch_clips_the_whole_gradient_when_the_head_is_large():
    for clip, expected in [(None, 12.0), (5.0, 5.0)]:
        hook, enc, head = _hook(clip=clip)
        model = nn.ModuleDict({"enc": nn.ModuleDict(enc), "head": head})
        for p in model.parameters():
            p.grad = torch.zeros_like(p)
        head.weight.grad[0, 0] = 12.0  # > 5
        hook.on_before_optimizer_step(
            _step({"a": torch.tensor(1.0), "v": torch.tensor(1.0)}, model)
        )
        total = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()]))
        assert float(total) == pytest.approx(expected, rel=1e-5)


TINY = [
    "model=agm",
    "dataset_config.synthetic.sizes.train=64",
    "dataset_config.synthetic.sizes.val=32",
    "dataset_config.synthetic.sizes.test=32",
    "training.batch_size=16",
]


def test_coalition_outputs_are_forwards_with_zeroed_inputs(tmp_path):
    trainer = make_trainer(str(tmp_path), *TINY, "model_config.agm.agm_sign=balancebenchmark")
    model = trainer.model
    (hook,) = model.training_hooks()
    assert hook.sign == "balancebenchmark" and hook.cap == 10.0  # agm_cap null: 10 at M = 2
    batch = trainer.ctx.to_device(next(iter(trainer.ctx.train_loader)))
    outputs = model.coalition_outputs(batch)
    assert model.training  # eval mode only inside
    with torch.no_grad():
        zeroed = batch.copy()
        zeroed["weak"] = torch.zeros_like(batch["weak"])
        expected = model(zeroed)["scores"]
    assert torch.allclose(outputs[frozenset({"strong"})], expected)
    with pytest.raises(Exception, match="agm_sign"):
        make_trainer(str(tmp_path / "bad"), *TINY, "model_config.agm.agm_sign=paper")
