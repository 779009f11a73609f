"""Diagnosing & Re-learning (mla_plugin/core/relearning.py, mla_plugin/models/relearning.py):
purity, strength and soft re-initialisation by hand, the re-initialisation through the
trainer (when, how far, from the saved θ^(0), never twice), and bad keys."""

import pytest
import torch

from mla_plugin.core.relearning import (
    cluster_purity,
    kmeans_purity,
    minmax_scale,
    relearning_strength,
    soft_reinit_,
)
from tests.support import make_trainer, three_modality_yaml

TINY = [
    "model=relearning",
    "dataset_config.synthetic.sizes.train=64",
    "dataset_config.synthetic.sizes.val=32",
    "dataset_config.synthetic.sizes.test=32",
    "training.batch_size=32",
    "model_config.relearning.relearn_period=1",
    "model_config.relearning.relearn_count=1",
]


def test_the_cards_example_by_hand():
    # P_train 0.9, P_val 0.6: tanh(3 * 0.3) = tanh(0.9) = 0.71630
    alpha = relearning_strength(0.9, 0.6, 3.0)
    assert round(alpha, 5) == 0.71630
    w = torch.tensor([2.0])
    soft_reinit_([w], [torch.tensor([0.0])], alpha)  # (1 - 0.7163) * 2.0 + 0.7163 * 0.0
    assert round(float(w), 4) == 0.5674
    assert relearning_strength(0.6, 0.9, 3.0) == alpha  # the gap's size, not its sign


def test_purity_and_scaling_by_hand():
    # cluster 0 holds labels {0, 1}: 1 hit; cluster 1 holds {1, 1, 0}: 2 hits; 3 / 5
    assert cluster_purity(torch.tensor([0, 0, 1, 1, 1]), torch.tensor([0, 1, 1, 1, 0])) == 0.6
    x = torch.tensor([[0.0, 5.0], [2.0, 5.0], [4.0, 5.0]])
    assert minmax_scale(x).tolist() == [[-1.0, 0.0], [0.0, 0.0], [1.0, 0.0]]
    # two well separated groups, labelled by group: purity 1; labels shuffled: 0.5
    feats = torch.cat([torch.zeros(4, 3), torch.ones(4, 3) * 10]) + torch.arange(8)[:, None] * 0.01
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    assert kmeans_purity(feats, labels, 2, seed=0) == 1.0
    assert kmeans_purity(feats, torch.tensor([0, 1, 0, 1, 0, 1, 0, 1]), 2, seed=0) == 0.5


def test_the_trainer_reinitialises_once_from_the_initial_weights(tmp_path):
    trainer = make_trainer(str(tmp_path), *TINY, "training.max_epochs=1")
    model, hook = trainer.model, trainer.hooks[0]
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    trainer.train()  # epoch 1: no re-initialisation at the first epoch
    assert hook.resets == []
    trained = {k: v.clone() for k, v in model.state_dict().items()}
    hook.on_train_epoch_start(2, trainer.ctx.num_batches)  # the second epoch's start
    (reset,) = hook.resets
    assert reset["epoch"] == 1 and set(reset["purity"]) == {"train", "val"}
    for m in ("strong", "weak"):
        a = reset["alpha"][m]
        assert a == relearning_strength(reset["purity"]["train"][m], reset["purity"]["val"][m], 3.0)
        for k, v in model.state_dict().items():
            if k.startswith(f"encoders.{m}."):
                assert torch.allclose(v, (1 - a) * trained[k] + a * initial[k], atol=1e-6), k
    for k, v in model.state_dict().items():
        if k.startswith("head"):
            assert torch.equal(v, trained[k])  # heads untouched
    before = {k: v.clone() for k, v in model.state_dict().items()}
    hook.on_train_epoch_start(2, trainer.ctx.num_batches)  # resumed in that epoch: not again
    hook.on_train_epoch_start(3, trainer.ctx.num_batches)  # relearn_count = 1 reached
    assert len(hook.resets) == 1
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    state = hook.state_dict()  # θ^(0) travels with the checkpoint
    assert torch.equal(state["initial"]["weak"][0], initial[next(
        k for k in initial if k.startswith("encoders.weak."))])  # fmt: skip


def test_three_modalities_with_missing_and_bad_keys(tmp_path):
    config = tmp_path / "three.yaml"
    config.write_text(three_modality_yaml())
    t = make_trainer(str(tmp_path / "run"), *TINY, "training.max_epochs=2", config=str(config))
    t.train()
    assert set(t.hooks[0].resets[0]["alpha"]) == {"a", "b", "c"}
    with pytest.raises(ValueError, match="model_config.relearning.relearn_period"):
        make_trainer(str(tmp_path / "bad"), *TINY, "model_config.relearning.relearn_period=0")
