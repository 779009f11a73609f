"""The methods whose model or data grows during training, through the trainer as mmf_run
builds it (in process): AUG's added learners are in the optimizer and the checkpoint, an
inactive learner does not move, and a kill after a learner was added resumes
bit-identically; Modality-valuation's re-sampled examples are in the checkpoint and a kill
after a re-sampling resumes bit-identically; the trainer's per-epoch examples
(``RunContext.set_train_examples``) give the loader exactly those examples."""

import os

import pytest
import torch

from tests.models.test_field_methods import TINY_SYNTHETIC
from tests.support import make_trainer, read_metrics, three_modality_yaml


def _ckpt(save):
    return torch.load(os.path.join(save, "current.ckpt"), weights_only=False)


def _straight_and_resumed(tmp_path, model, kill_at, *opts):
    straight = str(tmp_path / "straight")
    make_trainer(
        straight, f"model={model}", *TINY_SYNTHETIC, "training.max_epochs=3", *opts
    ).train()
    killed = str(tmp_path / "killed")
    make_trainer(
        killed, f"model={model}", *TINY_SYNTHETIC, *opts,
        "training.max_epochs=null", f"training.max_updates={kill_at}",
    ).train()  # fmt: skip
    resumed = make_trainer(
        killed, f"model={model}", *TINY_SYNTHETIC, *opts,
        "training.max_epochs=3", "checkpoint.resume=True",
    )  # fmt: skip
    return straight, killed, resumed


def _same(straight, killed):
    a, b = _ckpt(straight)["model"], _ckpt(killed)["model"]
    assert a.keys() == b.keys()
    assert not [k for k in a if not torch.equal(a[k], b[k])]
    assert read_metrics(straight)["test"] == read_metrics(killed)["test"]


def test_aug_resumes_bit_identically_after_a_learner_was_added(tmp_path):
    # 4 batches x 2 steps = 8 updates an epoch; the first assignment ends epoch 1, so
    # update 13 is in epoch 2 with a learner added
    straight, killed, resumed = _straight_and_resumed(tmp_path, "aug", 13)
    assert int(resumed.ctx.model.active.sum()) == 1 and resumed.ctx.batch_in_epoch > 0
    resumed.train()
    _same(straight, killed)
    history = read_metrics(straight)["aug_assignment"]["assignments"]
    assert [h["epoch"] for h in history] == [1, 2, 3]  # E = 3: every epoch


def test_aug_learners_are_in_the_optimizer_and_move_only_once_active(tmp_path):
    save = str(tmp_path / "a")
    trainer = make_trainer(save, "model=aug", *TINY_SYNTHETIC, "training.max_epochs=2")
    model = trainer.ctx.model
    in_optimizer = {id(p) for g in trainer.ctx.optimizer.param_groups for p in g["params"]}
    assert all(id(p) in in_optimizer for p in model.added_parameters())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer.train()
    after = _ckpt(save)["model"]  # the last weights (the run ends on its selected ones)
    history = read_metrics(save)["aug_assignment"]["assignments"]
    assert [h["added"] for h in history] == [True, True]  # after epochs 1 and 2
    assert int(after["active"].sum()) == 2
    # only the learner added after epoch 1 trained (in epoch 2); the one added after epoch
    # 2 and the inactive ones did not move: SGD's momentum and weight decay would move
    # them if their gradient were a zero tensor instead of None
    moved = {
        k for k in before
        if k.startswith("learners") and ".0." not in k and not torch.equal(before[k], after[k])
    }  # fmt: skip
    first = history[0]["modality"]
    assert moved == {f"learners.{first}.1.weight", f"learners.{first}.1.bias"}
    # the official code's switch: added learners never reach the optimizer's step
    frozen = make_trainer(
        str(tmp_path / "b"), "model=aug", *TINY_SYNTHETIC, "training.max_epochs=3",
        "model_config.aug.aug_train_added=false",
    )  # fmt: skip
    start = {k: v.clone() for k, v in frozen.ctx.model.state_dict().items()}
    frozen.train()
    end = frozen.ctx.model.state_dict()
    assert int(frozen.ctx.model.active.sum()) >= 1
    moved = [k for k in start if k.startswith("learners") and not torch.equal(start[k], end[k])]
    assert moved and all(".0." in k for k in moved)  # only the base learners A^0


def test_modality_valuation_resumes_bit_identically_after_a_resampling(tmp_path):
    opts = ["model_config.modality_valuation.mv_warmup=1"]
    straight, killed, resumed = _straight_and_resumed(tmp_path, "modality_valuation", 6, *opts)
    indices, keep = _ckpt(killed)["hooks"]["modality_valuation"]["examples"]
    assert len(indices) > 128 and not keep[128:].all(1).any()  # copies keep one modality
    assert resumed.ctx.num_batches == -(-len(indices) // 32) > 4
    resumed.train()
    _same(straight, killed)
    log = read_metrics(straight)["modality_valuation"]["resampling"]
    assert [e["epoch"] for e in log] == [1, 2]  # not after the last epoch


def test_per_epoch_examples_reach_the_loader(tmp_path):
    trainer = make_trainer(str(tmp_path / "e"), "model=concat", *TINY_SYNTHETIC)
    ctx = trainer.ctx
    keep = torch.tensor([[True, True], [True, False], [False, True]])
    ctx.set_train_examples(torch.tensor([5, 5, 7]), keep)
    assert ctx.num_batches == 1
    ctx.train_sampler.set_epoch(0)
    batch = next(iter(ctx.train_loader))
    rows = {(int(i), tuple(m.tolist())) for i, m in zip(batch["index"], batch["mask"], strict=True)}
    assert rows == {(5, (True, True)), (5, (True, False)), (7, (False, True))}
    ctx.set_train_examples()  # back to the whole split
    assert ctx.num_batches == 4


def test_three_modalities_aug_refused_the_others_train_with_missing(tmp_path):
    config = tmp_path / "three.yaml"
    config.write_text(three_modality_yaml(width=16))
    tiny = [*TINY_SYNTHETIC, "training.max_epochs=2"]
    with pytest.raises(ValueError, match=r"model_config\.aug\.modalities: .* got 3"):
        make_trainer(str(tmp_path / "aug"), "model=aug", *tiny, config=str(config))
    for model, extra in (
        ("amco", []),
        ("modality_valuation", ["model_config.modality_valuation.mv_warmup=1"]),
    ):
        save = str(tmp_path / model)
        trainer = make_trainer(save, f"model={model}", *tiny, *extra, config=str(config))
        trainer.train()
        metrics = read_metrics(save)
        assert set(metrics["test"]) == {"multi", "a", "b", "c"}
    log = read_metrics(save)["modality_valuation"]["resampling"]
    assert log and len(log[0]["mean_contribution"]) == 3


def test_modality_valuation_strategies_shape_the_examples(tmp_path):
    """sample: every extra example keeps exactly one modality, as many as the log's copies;
    balancebenchmark: R low-modality copies and R full copies (M = 2)."""
    mv = "model_config.modality_valuation"
    for name, extra in (
        ("sample", [f"{mv}.mv_strategy=sample"]),
        ("bb", [f"{mv}.mv_count=balancebenchmark", f"{mv}.mv_full_value=1"]),
    ):
        save = str(tmp_path / name)
        make_trainer(
            save, "model=modality_valuation", *TINY_SYNTHETIC, "training.max_epochs=2",
            f"{mv}.mv_warmup=1", *extra,
        ).train()  # fmt: skip
        indices, keep = _ckpt(save)["hooks"]["modality_valuation"]["examples"]
        assert indices[:128].tolist() == list(range(128)) and keep[:128].all()
        copies = read_metrics(save)["modality_valuation"]["resampling"][-1]["copies"]
        extra_keep = keep[128:]
        if name == "sample":
            assert len(extra_keep) == copies > 0 and (extra_keep.sum(1) == 1).all()
        else:
            half = len(extra_keep) // 2
            assert len(extra_keep) == copies == 2 * half > 0
            assert (extra_keep[:half].sum(1) == 1).all() and extra_keep[half:].all()
            assert torch.equal(indices[128 : 128 + half], indices[128 + half :])
