"""User hooks listed in training.hooks: called at each moment of the loop, in order,
after the model's own; their state saved and restored by name."""

import pytest
import torch

from mla_plugin.core.hooks import HOOKS, TrainingHook, register_hook
from mla_plugin.trainers.records import RunRecordError
from tests.support import make_trainer, read_metrics

TINY = [
    "dataset_config.synthetic.sizes.train=64",
    "dataset_config.synthetic.sizes.val=32",
    "dataset_config.synthetic.sizes.test=32",
    "training.batch_size=32",
]


@pytest.fixture
def recorder():
    calls = []

    @register_hook("test_recorder")
    class Recorder(TrainingHook):
        def __init__(self, tag):
            self.tag = tag

        def on_train_start(self, model):
            calls.append(("train_start",))

        def on_train_epoch_start(self, epoch, num_batches):
            calls.append(("epoch_start", epoch, num_batches))

        def on_before_optimizer_step(self, step):
            calls.append(("before_step", step.epoch, step.batch_index, step.modality))

        def on_after_optimizer_step(self, step):
            calls.append(("after_step", step.epoch, step.batch_index, step.modality))

        def on_train_batch_end(self, batch, batch_index, loss):
            calls.append(("batch_end", batch_index, len(batch.targets)))

        def on_train_epoch_end(self, epoch):
            calls.append(("epoch_end", epoch))

        def on_train_end(self, model):
            calls.append(("train_end", self.tag))

    yield calls
    del HOOKS["test_recorder"]


def test_user_hook_is_called_at_each_moment_in_order(tmp_path, recorder):
    trainer = make_trainer(
        str(tmp_path),
        *TINY,
        "training.max_epochs=2",
        "training.hooks=[{'type': 'test_recorder', 'params': {'tag': 'x'}}]",
    )
    assert [h.name for h in trainer.hooks] == ["hgm", "test_recorder"]
    trainer.train()
    mods = trainer.modalities  # MLA: one step per modality per batch, in this order
    expect = [("train_start",)]
    for epoch in (1, 2):
        expect.append(("epoch_start", epoch, 2))
        for b in (0, 1):
            for m in mods:
                expect += [("before_step", epoch, b, m), ("after_step", epoch, b, m)]
            expect.append(("batch_end", b, 32))
        expect.append(("epoch_end", epoch))
    expect.append(("train_end", "x"))
    assert recorder == expect


def test_grad_norm_state_round_trips_by_name(tmp_path):
    """One epoch, then resumed for a second: the resumed run's per-epoch gradient norms
    equal an uninterrupted two-epoch run's; a checkpoint without the hook's state, or a
    run without the hook, is refused naming both sides."""
    straight = make_trainer(
        str(tmp_path / "straight"), *TINY, "training.max_epochs=2", "training.hooks=['grad_norm']"
    )
    straight.train()
    norms = read_metrics(str(tmp_path / "straight"))["grad_norm"]["mean_l2"]
    assert len(norms) == 2 and all(n > 0 for n in norms)

    d = str(tmp_path / "resumed")
    make_trainer(d, *TINY, "training.max_epochs=1", "training.hooks=['grad_norm']").train()
    saved = torch.load(f"{d}/current.ckpt", weights_only=False)["hooks"]
    assert list(saved) == ["hgm", "grad_norm"]
    resumed = make_trainer(
        d, *TINY, "training.max_epochs=2", "training.hooks=['grad_norm']", "checkpoint.resume=True"
    )
    assert resumed.hooks[1].summary()["mean_l2"] == norms[:1]
    resumed.train()
    assert read_metrics(d)["grad_norm"]["mean_l2"] == norms  # exact: resume is exact
    # a resume without the hook is refused: the saved config lists it (the records check
    # names the key; a checkpoint's hook states are also matched by name, below)
    with pytest.raises(RunRecordError, match=r"training\.hooks: \['grad_norm'\] -> \[\]"):
        make_trainer(d, *TINY, "training.max_epochs=3", "checkpoint.resume=True")


def test_unknown_hook_in_config_is_refused_before_data(tmp_path):
    with pytest.raises(
        ValueError,
        match=r"training.hooks\[0\]: no training hook named 'nope'; "
        r"registered: .*grad_norm",
    ):
        make_trainer(str(tmp_path), *TINY, "training.hooks=['nope']")
    # (MMF's sections are type-checked first: mla_plugin/mmf_config.py)
    with pytest.raises(
        ValueError, match=r"config key training.hooks = '\[nope\]' is a string; expected a list"
    ):
        make_trainer(str(tmp_path), *TINY, "training.hooks=[nope]")  # not a Python literal


def test_hook_states_load_by_name_and_old_positional_ones_are_refused():
    from mla_plugin.core.hooks import GradNormHook
    from mla_plugin.trainers.checkpointing import hook_states, load_hook_states

    hook = GradNormHook()
    load_hook_states([hook], {"grad_norm": {"sums": {1: 2.0}, "counts": {1: 4}}}, "x.ckpt")
    assert hook.summary() == {"mean_l2": [0.5]}
    assert hook_states([hook]) == {"grad_norm": {"sums": {1: 2.0}, "counts": {1: 4}}}
    with pytest.raises(
        ValueError,
        match=r"old.ckpt holds state for the hooks 1 unnamed \(by position\), "
        r"but the model's hooks are \['grad_norm'\]",
    ):
        load_hook_states([hook], [{"sums": {}, "counts": {}}], "old.ckpt")
