"""LFM's terms by hand (the card's JS example, an InfoNCE, the fitted schedule, the
hypergradient step), its weight learned from the val split, and its switches."""

import math

import pytest
import torch

import mla_plugin.models.lfm as lfm_model
from mla_plugin.core.lfm import (
    alignment_loss,
    bb_js_divergence,
    fitted_alpha,
    hypergradient_step,
    info_nce,
    js_divergence,
    lfm_loss,
)
from tests.support import make_trainer

T = torch.tensor


def test_js_and_balancebenchmarks_reversed_kl():
    # p = (0.9, 0.1), q = (0.5, 0.5), m = (0.7, 0.3): JS = 0.10175; BB's 1/2[KL(m|p) + KL(m|q)]
    # = 1/2 (0.15366 + 0.08228) = 0.11797
    p, q = T([[0.9, 0.1]]), T([[0.5, 0.5]])
    assert float(js_divergence(p, q)) == pytest.approx(0.10175, abs=1e-5)
    assert float(bb_js_divergence(p, q)) == pytest.approx(0.11797, abs=1e-5)


def test_info_nce_by_hand():
    # orthogonal unit features, tau = 1: logits = I, each row's CE = log(1 + e^-1) = 0.31326
    # (both directions alike)
    h = T([[1.0, 0.0], [0.0, 2.0]])  # normalised first
    assert float(info_nce(h, h, 1.0)) == pytest.approx(math.log(1 + math.exp(-1)))


def test_alignment_pairs_and_missing_rows():
    h = {"a": T([[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]), "v": T([[1.0, 0.0], [0.0, 1.0], [1.0, -1]])}
    logits = {m: torch.zeros(3, 2) for m in h}
    present = T([[True, True], [True, True], [True, False]])
    # the third sample lacks v: only the first two are paired, as above
    got = alignment_loss("infonce", h, logits, present, 1.0)
    assert float(got) == pytest.approx(math.log(1 + math.exp(-1)))
    assert float(alignment_loss("js", h, logits, None, 1.0)) == 0.0  # equal predictions
    with pytest.raises(ValueError, match="alignment must be one of"):
        alignment_loss("cosine", h, logits, None, 1.0)


def test_weighting_and_the_fitted_schedule():
    # 2 [(1 - 0.25) 2 + 0.25 x 1] = 3.5
    assert float(lfm_loss(T(2.0), T(1.0), 0.25, 2.0)) == pytest.approx(3.5)
    assert fitted_alpha(0) == pytest.approx(0.2046237)
    # 0.2046237 + 0.0335473 + 0.0122990 - 0.0029295 + 0.0002238 - 0.0000054 = 0.2477589
    assert fitted_alpha(10) == pytest.approx(0.2477589, abs=1e-7)


def test_hypergradient_step_by_hand():
    # <g_outer, g_align - g_ce> = <(1, 0), (0, 2) - (1, 0)> = -1: alpha 0.5 + 0.1 x (-1) = 0.4
    g_ce, g_al = [T([1.0, 0.0])], [T([0.0, 2.0])]
    assert hypergradient_step(0.5, g_ce, g_ce, g_al, 0.1, 0.05, 0.95) == pytest.approx(0.4)
    # a held-out gradient along the alignment's: <(0, 1), (-1, 2)> = 2: 0.5 + 0.2 = 0.7
    assert hypergradient_step(0.5, [T([0.0, 1.0])], g_ce, g_al, 0.1, 0.05, 0.95) == pytest.approx(
        0.7
    )
    # aligned gradients raise it: <(1, 0), (2, 0) - (1, 0)> = 1, clipped at 0.95
    assert hypergradient_step(0.9, g_ce, g_ce, [T([2.0, 0.0])], 0.1, 0.05, 0.95) == 0.95


TINY = [
    "dataset_config.synthetic.sizes.train=32",
    "dataset_config.synthetic.sizes.val=16",
    "dataset_config.synthetic.sizes.test=16",
    "training.batch_size=16",
    "training.max_epochs=2",
]


def test_alpha_is_learned_from_the_val_split(tmp_path, monkeypatch):
    splits = []
    real = lfm_model.heldout_loader

    def spy(ctx, batch_size=None):
        splits.append(batch_size)
        return real(ctx, batch_size=batch_size)

    monkeypatch.setattr(lfm_model, "heldout_loader", spy)
    trainer = make_trainer(str(tmp_path), "model=lfm", *TINY,
                           "model_config.lfm.lfm_lr_alpha=0.5",
                           "model_config.lfm.lfm_alpha_init=0.5",
                           "model_config.lfm.lfm_heldout_samples=8")  # fmt: skip
    hook = next(h for h in trainer.ctx.hooks if h.name == "lfm")
    val, train = trainer.ctx.datasets["val"], trainer.ctx.datasets["train"]
    assert hook.heldout_batch().targets.tolist() == [int(val[i]["targets"]) for i in range(8)]
    assert hook.train_batch().targets.tolist() == [int(train[i]["targets"]) for i in range(8)]
    trainer.train()
    assert splits and set(splits) == {8}  # read through heldout_loader (the val split) only
    alphas = hook.summary()["alpha"]
    assert len(alphas) == 2 and alphas[0] != 0.5 and trainer.ctx.model.lfm_alpha == alphas[-1]


def test_inner_data_switch(tmp_path):
    # heldout (BalanceBenchmark): the inner gradients on the held-out batch, so a different
    # step from the default's training batch
    alphas = {}
    for inner in ("train", "heldout"):
        trainer = make_trainer(str(tmp_path / inner), "model=lfm", *TINY,
                               "training.max_epochs=1", "model_config.lfm.lfm_lr_alpha=0.5",
                               "model_config.lfm.lfm_alpha_init=0.5",
                               f"model_config.lfm.lfm_inner_data={inner}")  # fmt: skip
        trainer.train()
        alphas[inner] = trainer.ctx.model.lfm_alpha
    assert alphas["train"] != alphas["heldout"]


def test_fitted_switch_and_bad_values(tmp_path):
    trainer = make_trainer(str(tmp_path / "f"), "model=lfm", *TINY,
                           "model_config.lfm.lfm_weighting=fitted")  # fmt: skip
    trainer.train()
    hook = next(h for h in trainer.ctx.hooks if h.name == "lfm")
    assert hook.summary()["alpha"] == [fitted_alpha(0), fitted_alpha(1)]
    with pytest.raises(Exception, match="lfm_alignment = 'l2' is outside its declared choices"):
        make_trainer(str(tmp_path / "b"), "model=lfm", *TINY, "model_config.lfm.lfm_alignment=l2")
    with pytest.raises(Exception, match="lfm_alpha_low <= lfm_alpha_high"):
        make_trainer(str(tmp_path / "c"), "model=lfm", *TINY, "model_config.lfm.lfm_alpha_low=0.99")
