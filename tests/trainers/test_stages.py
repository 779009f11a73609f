"""Stages (mla_plugin/trainers/stages.py): a model that trains in two stages, resumed in
the middle of its second stage, ends bit-identical to an uninterrupted run, and a frozen
branch does not move at all in the stage that freezes it (SGD with momentum and weight
decay, the project's optimiser)."""

import os

import pytest
import torch
from mmf.common.registry import registry

from mla_plugin.models.concat import Concat
from mla_plugin.trainers.stages import Stage, StageRunner, declared_stages
from tests.support import make_trainer

TINY = [
    "model=test_two_stage",
    "dataset_config.synthetic.sizes.train=64",
    "dataset_config.synthetic.sizes.val=32",
    "dataset_config.synthetic.sizes.test=32",
    "training.batch_size=32",  # 2 batches, so 2 updates, per epoch
]
TEACHER_EPOCHS = 2


@registry.register_model("test_two_stage")
class TwoStage(Concat):
    """concat trained in two stages: the strong encoder and the head alone (the weak
    encoder frozen) for two epochs, then the weak encoder with the rest, the head frozen."""

    NAME = "test_two_stage"

    @classmethod
    def config_path(cls):
        return os.path.join(os.path.dirname(__file__), "two_stage_model.yaml")

    def stages(self):
        return [
            Stage("teacher", epochs=TEACHER_EPOCHS, freezes=("encoders.weak",)),
            Stage("joint", freezes=("head",)),
        ]


def _current(save):
    return torch.load(os.path.join(save, "current.ckpt"), weights_only=False)


def _part(state, prefix):
    return {k: v for k, v in state.items() if k.startswith(prefix)}


def _equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_resume_mid_second_stage_is_bit_identical_and_frozen_parts_stay(tmp_path):
    straight = make_trainer(str(tmp_path / "straight"), *TINY, "training.max_epochs=4")
    initial = {k: v.clone() for k, v in straight.model.state_dict().items()}
    straight.train()
    end = _current(str(tmp_path / "straight"))

    # stopped after update 5: the first batch of epoch 3, inside the second stage
    killed = str(tmp_path / "killed")
    first = make_trainer(killed, *TINY, "training.max_epochs=null", "training.max_updates=5")
    first.train()
    stopped = _current(killed)
    assert stopped["counts"]["batch_in_epoch"] == 1 and stopped["counts"]["epoch"] == 2
    assert stopped["callbacks"]["stages"]["current"] == "joint"
    assert set(stopped["callbacks"]["stages"]["states"]) == {"teacher", "joint"}
    resumed = make_trainer(killed, *TINY, "training.max_epochs=4", "checkpoint.resume=True")
    assert resumed.ctx.num_updates == 5
    resumed.train()
    again = _current(killed)
    assert _equal(again["model"], end["model"])  # bit-identical to the uninterrupted run
    assert again["counts"] == end["counts"]

    # the first stage alone: the weak encoder frozen, the rest trained
    teacher = str(tmp_path / "teacher")
    make_trainer(teacher, *TINY, f"training.max_epochs={TEACHER_EPOCHS}").train()
    after_teacher = _current(teacher)["model"]
    assert _equal(_part(after_teacher, "encoders.weak"), _part(initial, "encoders.weak"))
    assert not _equal(_part(after_teacher, "encoders.strong"), _part(initial, "encoders.strong"))
    # the second stage: the head frozen from where the first left it, the weak encoder moves
    assert _equal(_part(end["model"], "head"), _part(after_teacher, "head"))
    assert not _equal(_part(end["model"], "encoders.weak"), _part(after_teacher, "encoders.weak"))


def test_a_model_without_stages_has_one_and_bad_declarations_are_refused():
    assert [s.name for s in declared_stages(torch.nn.Linear(1, 1))] == ["train"]

    class Declares(torch.nn.Linear):
        def __init__(self, stages):
            super().__init__(1, 1)
            self._stages = stages

        def stages(self):
            return self._stages

    for stages, message in [
        ([], "non-empty list of Stage"),
        ([Stage("a"), Stage("b")], "only the last stage may have epochs=None"),
        ([Stage("a", 1), Stage("a")], "names must be distinct"),
        ([Stage("a", 0)], "needs epochs >= 1"),
    ]:
        with pytest.raises(ValueError, match=message):
            declared_stages(Declares(stages))


def test_stage_at_counts_whole_epochs():
    runner = StageRunner.__new__(StageRunner)
    runner.stages = (Stage("teacher", 2), Stage("joint"))
    assert [runner.stage_at(e).name for e in range(4)] == ["teacher", "teacher", "joint", "joint"]
