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


def test_registry_builds_user_hooks_by_name_and_refuses_the_rest():
    from mla_plugin.core.hooks import HOOKS, GradNormHook, build_hooks, register_hook

    @register_hook("test_scaled")
    class Scaled(TrainingHook):
        def __init__(self, factor):
            self.factor = factor

    try:
        built = build_hooks(["grad_norm", {"type": "test_scaled", "params": {"factor": 3}}])
        assert [type(h) for h in built] == [GradNormHook, Scaled] and built[1].factor == 3
        assert hook_names(built) == ["grad_norm", "test_scaled"]
        assert build_hooks([]) == [] and build_hooks(None) == []
        with pytest.raises(
            ValueError,
            match=r"training.hooks\[0\]: no training hook named "
            r"'grad_nrom'; registered: grad_norm, test_scaled",
        ):
            build_hooks(["grad_nrom"])
        with pytest.raises(ValueError, match=r"\[1\]: 'hgm' is built by its model"):
            build_hooks(["grad_norm", "hgm"])
        with pytest.raises(ValueError, match=r"\[0\]: hook 'test_scaled' with params \{\}"):
            build_hooks([{"type": "test_scaled"}])
        with pytest.raises(ValueError, match=r"\[0\]: .* must be a hook name or a mapping"):
            build_hooks([{"name": "grad_norm"}])
        with pytest.raises(ValueError, match="already registered"):
            register_hook("grad_norm")(type("Other", (TrainingHook,), {}))
    finally:
        del HOOKS["test_scaled"]
    assert {"hgm", "ogm_ge", "qmf", "cpm_prototypes", "grad_norm"} <= set(HOOKS)


def test_old_moment_names_are_refused():
    with pytest.raises(TypeError, match=r"\['after_backward'\].*on_before_optimizer_step"):

        class Old(TrainingHook):
            def after_backward(self, step):
                pass
