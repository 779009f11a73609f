"""InfoReg's rule by hand (the card's example), its switches, M >= 3 and its resume state."""

import math

import pytest
import torch
from torch import nn

from mla_plugin.core.hooks import Step
from mla_plugin.core.inforeg import InfoRegHook, prime_window_indicator, regulated_modality
from tests.support import make_trainer

BASE = {"a": 0.95, "v": 0.95}


def test_coefficient_by_hand():
    # s_a = 40, s_v = 20: beta_a = 0.95 exp(tanh 20) = 2.58237 (the card's example)
    m, beta = regulated_modality({"a": 40.0, "v": 20.0}, BASE)
    assert m == "a" and beta == pytest.approx(2.58237, abs=1e-5)
    # the stronger one is chosen from the scores, not fixed: video here, its own base
    m, beta = regulated_modality({"a": 1.0, "v": 2.0}, {"a": 0.95, "v": 0.1})
    assert m == "v" and beta == pytest.approx(0.1 * math.exp(math.tanh(1.0)))  # 0.21417
    assert regulated_modality({"a": 1.0, "v": 1.0}, BASE) == (None, 0.0)


def test_three_modalities_gap_to_the_mean_of_the_others():
    # top a = 3, the others' mean (1 + 2) / 2 = 1.5: gap 1.5, beta = 0.95 exp(tanh 1.5)
    m, beta = regulated_modality({"a": 3.0, "b": 1.0, "c": 2.0}, {k: 0.95 for k in "abc"})
    assert m == "a" and beta == pytest.approx(2.34868, abs=1e-5)


def test_prime_window_indicator_by_hand():
    # T_i = i + 1 over 12 epochs: recent mean(3..12) = 7.5, before mean(2..11) = 6.5,
    # k = 1 / 7.5 = 0.1333 (the card's example); flat traces close the window (k = 0)
    assert prime_window_indicator([float(i + 1) for i in range(12)], 10) == pytest.approx(1 / 7.5)
    assert prime_window_indicator([1.0] * 11, 10) == 0.0
    assert prime_window_indicator([], 10) == 1.0
    # with the zero padding: one epoch in, recent = T/10, before = 0 -> k = 1
    assert prime_window_indicator([5.0], 10) == pytest.approx(1.0)


class Enc(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1, 2))


def _logits(p):  # two classes, target 0 with probability p for both samples
    return torch.log(torch.tensor([[p, 1 - p], [p, 1 - p]]))


def _hook(**kw):
    enc = {"a": Enc(), "v": Enc()}
    args = dict(bases=dict(BASE), window=10, threshold=0.05, window_modality=None)
    return enc, InfoRegHook(enc, **{**args, **kw})


def _step(hook, enc, pa, pv, epoch=1):
    for e in enc.values():
        e.w.grad = torch.zeros(1, 2)
    outputs = {"modality_scores": {"a": _logits(pa), "v": _logits(pv)}}
    batch = {"targets": torch.tensor([0, 0])}
    hook.on_before_optimizer_step(Step(loss=torch.tensor(0.0), outputs=outputs, batch=batch,
                                       epoch=epoch))  # fmt: skip


def test_hook_pulls_the_stronger_encoder_back_and_records_its_trace():
    enc, hook = _hook()
    hook.on_train_epoch_start(1, 4)
    with torch.no_grad():
        enc["a"].w += 0.01
        enc["v"].w += 0.01
    # s_a = 2 x 0.75 = 1.5, s_v = 2 x 0.25 = 0.5: gap 1, beta_a = 0.95 exp(tanh 1) = 2.03460
    _step(hook, enc, 0.75, 0.25)
    assert enc["a"].w.grad.tolist()[0] == pytest.approx([0.020346] * 2, abs=1e-6)
    assert enc["v"].w.grad.tolist()[0] == [0.0, 0.0]
    # the trace: the tensor mean of g^2 summed over steps = 0.020346^2 = 4.1396e-4
    hook.on_train_epoch_end(1)
    assert hook.traces["a"] == [pytest.approx(0.020346**2, rel=1e-4)] and hook.traces["v"] == [0]
    assert hook.summary()["regulated_steps"] == {"a": [1], "v": [0]}


def test_closed_window_and_the_official_window_modality():
    enc, hook = _hook(window_modality="a")
    hook.traces = {"a": [1.0] * 11, "v": [float(i + 1) for i in range(12)]}
    hook.on_train_epoch_start(12, 4)  # a's trace is flat: closed for everyone
    with torch.no_grad():
        enc["v"].w += 0.01
    _step(hook, enc, 0.25, 0.75, epoch=12)
    assert enc["v"].w.grad.tolist()[0] == [0.0, 0.0]
    enc, hook = _hook()  # each modality's own trace: v's window is open (k = 0.133)
    hook.traces = {"a": [1.0] * 11, "v": [float(i + 1) for i in range(12)]}
    hook.on_train_epoch_start(12, 4)
    with torch.no_grad():
        enc["v"].w += 0.01
    _step(hook, enc, 0.25, 0.75, epoch=12)
    assert enc["v"].w.grad.tolist()[0] == pytest.approx([0.020346] * 2, abs=1e-6)


def test_resumed_mid_epoch_keeps_the_epoch_start_snapshot():
    enc, hook = _hook()
    hook.on_train_epoch_start(3, 4)
    with torch.no_grad():
        enc["a"].w += 0.5
    state = hook.state_dict()
    enc2 = {"a": Enc(), "v": Enc()}
    with torch.no_grad():
        enc2["a"].w += 0.5  # the weights as checkpointed
    hook2 = InfoRegHook(enc2, bases=dict(BASE), window=10, threshold=0.05, window_modality=None)
    hook2.load_state_dict(state)
    hook2.on_train_epoch_start(3, 4)  # called again for the resumed epoch: no new snapshot
    assert hook2.snapshot["a"][0].tolist() == [[0.0, 0.0]]
    hook2.on_train_epoch_start(4, 4)
    assert hook2.snapshot["a"][0].tolist() == [[0.5, 0.5]]


TINY = [
    "dataset_config.synthetic.sizes.train=32",
    "dataset_config.synthetic.sizes.val=16",
    "dataset_config.synthetic.sizes.test=16",
    "training.batch_size=16",
]


def test_model_switches_and_errors(tmp_path):
    trainer = make_trainer(str(tmp_path / "o"), "model=inforeg", *TINY,
                           "model_config.inforeg.inforeg_beta_by_modality={strong: 0.95, weak: 0.1}",
                           "model_config.inforeg.inforeg_window_modality=strong")  # fmt: skip
    hook = next(h for h in trainer.ctx.hooks if h.name == "inforeg")
    assert hook.bases == {"strong": 0.95, "weak": 0.1} and hook.window_modality == "strong"
    with pytest.raises(Exception, match="inforeg_window_modality: 'audio' is not one of"):
        make_trainer(str(tmp_path / "b"), "model=inforeg", *TINY,
                     "model_config.inforeg.inforeg_window_modality=audio")  # fmt: skip
    with pytest.raises(Exception, match=r"inforeg_beta_by_modality has no entry for \['weak'\]"):
        make_trainer(str(tmp_path / "c"), "model=inforeg", *TINY,
                     "model_config.inforeg.inforeg_beta_by_modality={strong: 0.95}")  # fmt: skip
