"""The loop's callbacks (mla_plugin/trainers/callbacks.py): listed by name in
training.callbacks, replaceable there, their state saved by name."""

import os

import pytest
import torch

from mla_plugin.core.hooks import HOOKS, LOOP_CALLBACKS, TrainingHook, register_hook
from mla_plugin.trainers.checkpointing import CheckpointCallback
from tests.support import make_trainer, read_metrics

TINY = [
    "model=concat",
    "dataset_config.synthetic.sizes.train=64",
    "dataset_config.synthetic.sizes.val=32",
    "dataset_config.synthetic.sizes.test=32",
    "training.batch_size=32",
    "training.max_epochs=2",
]
DEFAULT = [
    "divergence_guard",
    "progress",
    "model_selection",
    "early_stopping",
    "tensorboard",
    "checkpoint",
]


def _names(trainer):
    return [c.name for c in trainer.ctx.callbacks]


def test_default_callbacks_in_order_and_dropping_the_logging_ones_changes_no_result(tmp_path):
    full = str(tmp_path / "full")
    trainer = make_trainer(full, *TINY)
    assert _names(trainer) == ["stages", *DEFAULT]  # the stage runner, then the config's
    trainer.train()
    state = torch.load(os.path.join(full, "current.ckpt"), weights_only=False)
    assert set(state["callbacks"]) == {"stages", *DEFAULT}
    early = state["callbacks"]["early_stopping"]  # the rule's state, by the callback's name
    assert set(early) == {"best", "best_update", "stopped"} and early["stopped"] is False
    lean = str(tmp_path / "lean")
    kept = "['divergence_guard', 'model_selection', 'early_stopping', 'checkpoint']"
    trainer = make_trainer(lean, *TINY, f"training.callbacks={kept}")
    assert _names(trainer) == ["stages", *eval(kept)]
    trainer.train()
    with (
        open(os.path.join(full, "metrics.json"), "rb") as a,
        open(os.path.join(lean, "metrics.json"), "rb") as b,
    ):
        assert a.read() == b.read()


@pytest.fixture
def every_epoch_ckpt():
    @register_hook("test_epoch_ckpt", callback=True)
    class EveryEpoch(CheckpointCallback):
        """The checkpoint callback, swapped: also keeps a copy per epoch."""

        def __init__(self, prefix="epoch"):
            self.prefix = prefix

        def on_train_epoch_end(self, epoch):
            super().on_train_epoch_end(epoch)
            src = os.path.join(self.ctx.save_dir, "current.ckpt")
            dst = os.path.join(self.ctx.save_dir, f"{self.prefix}{epoch}.ckpt")
            with open(src, "rb") as f, open(dst, "wb") as g:
                g.write(f.read())

    yield
    del HOOKS["test_epoch_ckpt"]
    LOOP_CALLBACKS.discard("test_epoch_ckpt")


def test_a_callback_is_swapped_by_name(tmp_path, every_epoch_ckpt):
    save = str(tmp_path)
    swapped = (
        "['divergence_guard', 'model_selection', {'type': 'test_epoch_ckpt', "
        "'params': {'prefix': 'e'}}]"
    )
    trainer = make_trainer(save, *TINY, f"training.callbacks={swapped}")
    assert _names(trainer) == ["stages", "divergence_guard", "model_selection", "test_epoch_ckpt"]
    trainer.train()
    assert os.path.isfile(os.path.join(save, "e1.ckpt")) and os.path.isfile(
        os.path.join(save, "e2.ckpt")
    )
    assert read_metrics(save)["selected_epoch"] in (1, 2)


@pytest.mark.parametrize(
    "opt, message",
    [
        ("training.callbacks=['grad_norm']", r"'grad_norm' belongs in training.hooks"),
        ("training.hooks=['checkpoint']", r"'checkpoint' belongs in training.callbacks"),
        ("training.callbacks=['nope']", r"no training hook named 'nope'; registered: .*checkpoint"),
        ("training.callbacks=['checkpoint', 'checkpoint']", r"share the names \['checkpoint'\]"),
        ("training.callbacks=checkpoint", r"must be a list of callback names"),
    ],
)
def test_bad_callback_lists_are_refused_before_data(tmp_path, opt, message, monkeypatch):
    from mla_plugin.trainers import multimodal

    def no_data(self):
        raise AssertionError("the data was read before the config was checked")

    monkeypatch.setattr(multimodal.MultimodalTrainer, "load_datasets", no_data)
    with pytest.raises(ValueError, match=message):
        make_trainer(str(tmp_path), *TINY, opt)


def test_every_callback_is_a_registered_hook():
    for name in DEFAULT:
        assert name in LOOP_CALLBACKS and issubclass(HOOKS[name], TrainingHook)
