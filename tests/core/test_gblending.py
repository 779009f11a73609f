"""G-Blending (mla_plugin/core/gblending.py, mla_plugin/models/gblending.py): the blend
weights w_k ∝ G_k / O_k² by hand, the blended loss, the estimation through the trainer
(on val, once per super-epoch, surviving a resume), each switch and three modalities."""

import math
import os

import pytest
import torch

from mla_plugin.core.gblending import blend_weights, blended_loss
from tests.support import make_trainer, three_modality_yaml

TINY = [
    "model=gblending",
    "dataset_config.synthetic.sizes.train=64",
    "dataset_config.synthetic.sizes.val=32",
    "dataset_config.synthetic.sizes.test=32",
    "training.batch_size=16",  # 4 batches per epoch, 2 val batches
    "model_config.gblending.gblend_super_epoch=1",
]


def test_the_cards_example_by_hand():
    # head a: L_T 10 -> 5, L* 8 -> 6: G = 8 - 6 = 2, O = (6 - 5) - (8 - 10) = 3, raw 2/9
    # head b: L_T 10 -> 6, L* 8 -> 7: G = 1, O = (7 - 6) - (8 - 10) = 3, raw 1/9
    # head f: L_T 10 -> 3, L* 8 -> 4: G = 4, O = (4 - 3) - (8 - 10) = 3, raw 4/9
    # normalised: 2/7, 1/7, 4/7 = 0.2857, 0.1429, 0.5714
    weights, parts = blend_weights(
        {"a": 10, "b": 10, "f": 10}, {"a": 5, "b": 6, "f": 3},
        {"a": 8, "b": 8, "f": 8}, {"a": 6, "b": 7, "f": 4}, gain="paper",
    )  # fmt: skip
    assert parts["a"] == {"G": 2, "O": 3, "raw": pytest.approx(2 / 9)}
    assert [round(weights[k], 4) for k in "abf"] == [0.2857, 0.1429, 0.5714]


def test_a_head_whose_held_out_loss_rose_gets_nothing_unless_abs():
    # head a: L* 8 -> 9 (G = -1), L_T 10 -> 5: O = (9 - 5) - (8 - 10) = 6; raw -1/36
    # head b: as b above, raw 1/9
    args = ({"a": 10, "b": 10}, {"a": 5, "b": 6}, {"a": 8, "b": 8}, {"a": 9, "b": 7})
    paper, _ = blend_weights(*args, gain="paper")
    assert paper == {"a": 0.0, "b": 1.0}
    bb, parts = blend_weights(*args, gain="abs")  # |G / O²|: 1/36 and 4/36 -> 1/5, 4/5
    assert parts["a"]["G"] == -1 and bb["a"] == pytest.approx(0.2) and bb["b"] == pytest.approx(0.8)
    # nothing generalised: equal weights
    none, _ = blend_weights({"a": 1, "b": 1}, {"a": 1, "b": 1}, {"a": 2, "b": 2},
                            {"a": 3, "b": 3}, gain="paper")  # fmt: skip
    assert none == {"a": 0.5, "b": 0.5}
    with pytest.raises(ValueError, match="gain must be one of"):
        blend_weights(*args, gain="other")


def test_the_blended_loss_is_the_weighted_sum():
    losses = {"a": torch.tensor(1.0), "b": torch.tensor(2.0), "fused": torch.tensor(4.0)}
    w = torch.tensor([0.5, 0.25, 0.25])
    assert float(blended_loss(losses, w, ["a", "b", "fused"])) == 0.5 + 0.5 + 1.0


def test_estimated_per_super_epoch_on_val_and_the_step_uses_the_weights(tmp_path):
    trainer = make_trainer(str(tmp_path), *TINY, "training.max_epochs=2")
    model, hook = trainer.model, trainer.hooks[0]
    trainer.train()
    assert [e["epoch"] for e in hook.estimates] == [0, 1]  # one per super-epoch
    last = hook.estimates[-1]["weights"]
    assert model.blend_weights.tolist() == pytest.approx([last[k] for k in model.branches])
    assert math.isclose(sum(last.values()), 1.0) and set(last) == {"strong", "weak", "fused"}
    # the step's loss is Σ_k w_k CE_k with the model's weights
    batch = trainer.ctx.to_device(next(iter(trainer.ctx.train_loader)))
    step = next(model.training_steps(batch, 0))
    losses, _ = model.branch_losses(step.outputs, batch.targets)
    expected = sum(last[k] * float(losses[k].detach()) for k in model.branches)
    assert float(step.loss.detach()) == pytest.approx(expected, rel=1e-5)
    assert os.path.exists(tmp_path / "current.ckpt")
    ckpt = torch.load(tmp_path / "current.ckpt", weights_only=False)
    assert torch.equal(ckpt["model"]["blend_weights"], model.blend_weights)


@pytest.mark.parametrize(
    "switch",
    [
        "gblend_measure=after_first_epoch",
        "gblend_reduction=sum",
        "gblend_copy_optimizer=adamw",
        "gblend_heads=slices",
    ],  # (gblend_gain: by hand, above)
)
def test_each_switch_changes_the_estimate(switch, tmp_path):
    def estimate(save, *extra):
        t = make_trainer(str(save), *TINY, "training.max_epochs=1", *extra)
        t.train()
        return t.hooks[0].estimates[0]["parts"], t.model

    base, _ = estimate(tmp_path / "base")
    other, model = estimate(tmp_path / "other", f"model_config.gblending.{switch}")
    assert any(other[k]["G"] != base[k]["G"] for k in base), switch
    if switch == "gblend_heads=slices":
        assert not hasattr(model, "heads")
    if switch == "gblend_reduction=sum":  # 2 val batches: about twice the per-sample mean
        assert other["fused"]["G"] != pytest.approx(base["fused"]["G"])


def test_offline_estimates_once(tmp_path):
    t = make_trainer(str(tmp_path), *TINY, "training.max_epochs=2",
                     "model_config.gblending.gblend_online=false")  # fmt: skip
    t.train()
    assert [e["epoch"] for e in t.hooks[0].estimates] == [0]


def test_a_kill_after_an_estimate_resumes_bit_identically(tmp_path):
    straight = str(tmp_path / "straight")
    make_trainer(straight, *TINY, "training.max_epochs=3").train()
    killed = str(tmp_path / "killed")
    make_trainer(killed, *TINY, "training.max_epochs=null", "training.max_updates=6").train()
    resumed = make_trainer(killed, *TINY, "training.max_epochs=3", "checkpoint.resume=True")
    assert resumed.ctx.batch_in_epoch == 2 and len(resumed.hooks[0].estimates) == 2
    resumed.train()
    assert [e["epoch"] for e in resumed.hooks[0].estimates] == [0, 1, 2]  # epoch 1 not twice
    a = torch.load(os.path.join(straight, "current.ckpt"), weights_only=False)["model"]
    b = torch.load(os.path.join(killed, "current.ckpt"), weights_only=False)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_three_modalities_with_missing_and_bad_keys(tmp_path):
    config = tmp_path / "three.yaml"
    config.write_text(three_modality_yaml())
    t = make_trainer(str(tmp_path / "run"), *TINY, "training.max_epochs=1", config=str(config))
    t.train()
    weights = t.hooks[0].estimates[0]["weights"]
    assert list(weights) == ["a", "b", "c", "fused"] and math.isclose(sum(weights.values()), 1)
    with pytest.raises(ValueError, match="model_config.gblending.gblend_heads"):
        make_trainer(str(tmp_path / "bad"), *TINY, "model_config.gblending.gblend_heads=both")
