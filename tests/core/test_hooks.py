"""Hook names: the key of each hook's state in checkpoints."""

import pytest

from mla_plugin.core.hooks import Step, TrainingHook, hook_names


class Named(TrainingHook):
    def __init__(self, name):
        self.name = name


def test_hook_names_unique_and_present():
    assert hook_names([Named("hgm"), Named("qmf")]) == ["hgm", "qmf"]
    assert hook_names([]) == []
    with pytest.raises(ValueError, match=r"share the names \['hgm'\]"):
        hook_names([Named("hgm"), Named("qmf"), Named("hgm")])
    with pytest.raises(ValueError, match="without a name: \\['TrainingHook'\\]"):
        hook_names([TrainingHook()])


def test_step_model_fields_then_loop_context():
    import dataclasses

    import torch

    step = Step(loss=torch.tensor(1.0), modality="a", modality_index=0)
    assert step.features == {} and step.outputs == {} and step.model is None and step.mask is None
    filled = dataclasses.replace(step, epoch=2, batch_index=3, num_batches=4, global_step=5)
    assert (filled.modality, filled.epoch, filled.global_step) == ("a", 2, 5)
