"""The protocol every method keeps, checked for every registered plugin model (found by
discovery, so a method is covered the day it is registered):

* **no method reads the test split during training**: the test split's dataset counts
  its reads from the first epoch until ``on_train_end``; held-out data comes from val
  (mla_plugin/data/heldout.py);
* **frozen means frozen**: for every model that declares ``stages()``, each stage's
  frozen parameters change by exactly zero during it (SGD with momentum and weight decay),
  and a run killed in the middle of each stage, one after the other, and resumed each
  time ends bit-identical to an uninterrupted run.
"""

import os

import pytest
import torch
from mmf.common.registry import registry

import mla_plugin
from mla_plugin.core.hooks import TrainingHook
from mla_plugin.leaderboard.methods import plugin_models
from mla_plugin.trainers.stages import declared_stages
from tests.support import make_trainer, read_metrics

mla_plugin.register()
TINY = [
    "dataset_config.synthetic.sizes.train=64",
    "dataset_config.synthetic.sizes.val=32",
    "dataset_config.synthetic.sizes.test=32",
    "training.batch_size=32",  # 2 batches per epoch
    "optimizer.params.momentum=0.9",
    "optimizer.params.weight_decay=0.01",
]
# settings that make a method's held-out mechanism run within two epochs
EXERCISE = {
    "gblending": ["model_config.gblending.gblend_super_epoch=1"],
    "relearning": ["model_config.relearning.relearn_period=1"],
}
# shorter stages, same mechanism: every stage is still run and killed in (about 5 s, not 20)
SHORT_STAGES = {
    "reconboost": [
        "model_config.reconboost.reconboost_rounds=2",
        "model_config.reconboost.reconboost_boost_epochs=1",
        "model_config.reconboost.reconboost_rectify_epochs=2",
    ],
}
STAGED = [m for m in plugin_models() if hasattr(registry.get_model_class(m), "stages")]


class Recorder(TrainingHook):
    """A test callback: the test split's reads before, during (from the first epoch's
    start to ``on_train_end``) and after training, and the model's state and update count
    at each epoch's start and at the end."""

    name = "test_recorder"

    def __init__(self, trainer):
        self.trainer, self.phase = trainer, "before"
        self.reads = {"before": 0, "training": 0, "after": 0}
        self.snapshots: list[tuple[int, dict]] = []  # (updates, state) per epoch start

    def on_train_epoch_start(self, epoch, num_batches):
        self.phase = "training"
        ctx = self.trainer.ctx
        if ctx.batch_in_epoch == 0:
            state = {k: v.detach().clone() for k, v in ctx.model.state_dict().items()}
            self.snapshots.append((ctx.num_updates, state))

    def on_train_end(self, model):
        self.phase = "after"
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.snapshots.append((self.trainer.ctx.num_updates, state))


def watch_test_split(trainer) -> Recorder:
    """A :class:`Recorder` among the trainer's callbacks, counting the samples read from
    the test split's dataset (its class swapped for a subclass whose ``__getitem__`` and
    batched ``__getitems__``, the DataLoader's fetch where defined, count)."""
    recorder = Recorder(trainer)
    trainer.ctx.callbacks.append(recorder)
    data = trainer.ctx.datasets["test"]
    base = type(data)

    def item(self, index):
        recorder.reads[recorder.phase] += 1
        return base.__getitem__(self, index)

    counted = {"__getitem__": item}
    if hasattr(base, "__getitems__"):

        def items(self, indices):
            recorder.reads[recorder.phase] += len(indices)
            return base.__getitems__(self, indices)

        counted["__getitems__"] = items
    data.__class__ = type(f"Watched{base.__name__}", (base,), counted)
    return recorder


@pytest.mark.parametrize("method", plugin_models())
def test_no_method_reads_the_test_split_during_training(method, tmp_path):
    trainer = make_trainer(
        str(tmp_path), f"model={method}", *TINY, "training.max_epochs=2", *EXERCISE.get(method, [])
    )
    recorder = watch_test_split(trainer)
    trainer.train()
    assert recorder.reads["training"] == 0, f"{method} read the test split during training"
    assert recorder.reads["after"] >= 32  # the watch works: the final evaluation reads test


def _equal(a, b, prefixes=None):
    keys = [k for k in a if prefixes is None or any(k.startswith(p) for p in prefixes)]
    return [k for k in keys if not torch.equal(a[k], b[k])]


def test_the_staged_methods_are_found():
    assert "reconboost" in STAGED and set(SHORT_STAGES) <= set(STAGED)


@pytest.mark.parametrize("method", STAGED)
def test_frozen_means_frozen_and_each_stage_resumes_bit_identically(method, tmp_path):
    opts = [f"model={method}", *TINY, "training.evaluation_interval=1",
            *SHORT_STAGES.get(method, [])]  # fmt: skip
    probe = make_trainer(str(tmp_path / "probe"), *opts, "training.max_epochs=1")
    stages = declared_stages(probe.model)
    epochs = sum(s.epochs or 1 for s in stages)  # the open-ended last stage: one epoch
    straight = make_trainer(str(tmp_path / "straight"), *opts, f"training.max_epochs={epochs}")
    recorder = watch_test_split(straight)
    straight.train()
    snaps = recorder.snapshots  # epoch starts 0..epochs-1, then the end
    assert len(snaps) == epochs + 1
    boundaries = {u for u, _ in snaps}
    start, kills = 0, []
    for stage in stages:
        end = start + (stage.epochs or 1)
        (u0, before), (u1, after) = snaps[start], snaps[end]
        moved = _equal(before, after, stage.freezes) if stage.freezes else []
        assert not moved, f"{method}: stage {stage.name} moved its frozen {moved}"
        assert _equal(before, after), f"{method}: stage {stage.name} trained nothing"
        mid = u0 + (u1 - u0) // 2
        if mid in boundaries and mid + 1 < u1:  # inside an epoch where the stage allows
            mid += 1
        kills.append((stage.name, mid))
        start = end
    # killed in the middle of each stage in turn, resumed each time
    killed = str(tmp_path / "killed")
    for i, (name, update) in enumerate(kills):
        resume = ["checkpoint.resume=True"] if i else []
        make_trainer(killed, *opts, "training.max_epochs=null", f"training.max_updates={update}",
                     *resume).train()  # fmt: skip
        saved = torch.load(os.path.join(killed, "current.ckpt"), weights_only=False)
        assert saved["counts"]["num_updates"] == update
        assert saved["callbacks"]["stages"]["current"] == name, (method, name, update)
    make_trainer(killed, *opts, f"training.max_epochs={epochs}", "checkpoint.resume=True").train()
    a = torch.load(os.path.join(tmp_path / "straight", "current.ckpt"), weights_only=False)
    b = torch.load(os.path.join(killed, "current.ckpt"), weights_only=False)
    assert not _equal(a["model"], b["model"]), f"{method}: the resumed run differs"
    assert read_metrics(str(tmp_path / "straight"))["test"] == read_metrics(killed)["test"]
