"""MMF's loop options change the run as MMF documents (max_updates, clip_gradients,
evaluation_interval, early_stop), and a typo, wrong type, out-of-range value or unused
MMF key in MMF's sections is refused before training, naming the key."""

import argparse
import os

import pytest
import torch
from omegaconf import OmegaConf

from mla_plugin.config_validation import ConfigError
from mla_plugin.mmf_config import validate_mmf_sections
from mla_plugin.trainers import multimodal
from mla_plugin.trainers.loop_options import EarlyStopping, stop_limits
from tests.support import REPO, SYNTHETIC, make_trainer, read_metrics

# 4 batches of 16 per epoch
TINY = [
    "dataset_config.synthetic.sizes.train=64",
    "dataset_config.synthetic.sizes.val=32",
    "dataset_config.synthetic.sizes.test=32",
    "training.batch_size=16",
]
CONCAT = [*TINY, "model=concat"]


def _weights(trainer):
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


def test_max_updates_stops_mid_epoch_finalizes_and_resumes_exactly(tmp_path):
    by_updates = [*CONCAT, "training.max_epochs=null", "protocol.selection=last"]
    save = str(tmp_path / "a")
    first = make_trainer(save, *by_updates, "training.max_updates=6")
    first.train()
    assert (first.ctx.num_updates, first.ctx.epoch, first.ctx.batch_in_epoch) == (6, 1, 2)
    assert read_metrics(save)["selected_update"] == 6
    # resumed from the mid-epoch current.ckpt with a later limit: the same weights as
    # one uninterrupted run to that limit
    resumed = make_trainer(save, *by_updates, "training.max_updates=10", "checkpoint.resume=True")
    assert (resumed.ctx.num_updates, resumed.ctx.batch_in_epoch) == (6, 2)
    resumed.train()
    straight = make_trainer(str(tmp_path / "b"), *by_updates, "training.max_updates=10")
    straight.train()
    assert resumed.ctx.num_updates == straight.ctx.num_updates == 10
    a, b = _weights(resumed), _weights(straight)
    assert all(torch.equal(a[k], b[k]) for k in b)


def test_max_epochs_wins_over_max_updates_as_in_mmf(tmp_path):
    trainer = make_trainer(
        str(tmp_path), *CONCAT, "training.max_epochs=2", "training.max_updates=3"
    )
    assert (trainer.ctx.max_epochs, trainer.ctx.max_updates) == (2, float("inf"))
    lines = []
    both = OmegaConf.create({"max_epochs": 2, "max_updates": 3})
    assert stop_limits(both, lambda *line: lines.append(line)) == (2, float("inf"))
    assert lines == [
        (
            "training.max_updates=3 is ignored: training.max_epochs=2 is set and wins, as in "
            "MMF; set training.max_epochs=null to stop by updates",
            "warning",
        )
    ]
    updates_only = OmegaConf.create({"max_epochs": None, "max_updates": 3})
    assert stop_limits(updates_only, lambda *line: lines.append(line)) == (float("inf"), 3)
    assert len(lines) == 1


def test_mla_counts_updates_per_modality_evaluates_every_interval(tmp_path):
    """MLA takes 2 updates per batch (2 modalities): batch ends at 2, 4, 6, 8 updates;
    max_updates=7 stops at the end of the 4th batch; evaluation_interval=3 evaluates
    where a multiple of 3 was crossed (4, 6), then once more where it stops (8); none
    at the epoch's end."""
    trainer = make_trainer(
        str(tmp_path),
        *TINY,
        "training.max_epochs=null",
        "training.max_updates=7",
        "training.evaluation_interval=3",
    )
    seen, evaluate = [], trainer.validate

    def spy():
        seen.append(trainer.ctx.num_updates)
        evaluate()

    trainer.validate = spy
    trainer.train()
    assert trainer.ctx.num_updates == 8 and trainer.ctx.epoch == 1
    assert seen == [4, 6, 8]


def test_clip_gradients_bounds_the_norm_the_optimizer_sees(tmp_path):
    def run(save, *opts):
        trainer = make_trainer(save, *TINY, "training.max_epochs=1", *opts)
        norms = []

        def spy(optimizer, args, kwargs):  # runs inside optimizer.step(), before the update
            grads = [p.grad for p in trainer.model.parameters() if p.grad is not None]
            norms.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))

        trainer.ctx.optimizer.register_step_pre_hook(spy)
        trainer.train()
        return norms, _weights(trainer)

    limit = 0.05
    free, free_weights = run(str(tmp_path / "off"))
    clipped, clipped_weights = run(
        str(tmp_path / "on"), "training.clip_gradients=True", f"training.max_grad_l2_norm={limit}"
    )
    assert len(free) == len(clipped) == 8  # MLA: 4 batches x 2 modalities
    assert max(free) > limit  # the limit binds
    assert max(clipped) <= limit * (1 + 1e-5), clipped
    assert any(not torch.equal(free_weights[k], clipped_weights[k]) for k in free_weights)


def test_early_stop_follows_mmf_rule_finalizes_and_stays_stopped(tmp_path, monkeypatch):
    """Scripted val accuracies, one evaluation per update, patience 2: best at update 2
    (0.6); 3 (0.6, not strictly better) and 4 (2 + 2 < 4 is false) go on; 5 stops."""
    save = str(tmp_path)
    opts = [
        *CONCAT,
        "training.evaluation_interval=1",
        "training.early_stop.enabled=True",
        "training.early_stop.criteria=val/multi",
        "training.early_stop.minimize=False",
        "training.early_stop.patience=2",
    ]
    trainer = make_trainer(save, *opts)
    values = iter([0.5, 0.6, 0.6, 0.55, 0.6, 0.9])
    monkeypatch.setattr(  # the loop's validation (finalize predicts for itself)
        multimodal,
        "evaluate_split",
        lambda ctx, split: {"multi": next(values), "strong": 0.0, "weak": 0.0},
    )
    trainer.train()
    assert trainer.ctx.num_updates == 5 and trainer.ctx.should_stop
    metrics = read_metrics(save)
    assert metrics["selected_update"] == 2  # protocol.selection=val: best.ckpt of update 2
    resumed = make_trainer(save, *opts, "checkpoint.resume=True")
    assert resumed.ctx.should_stop and resumed.ctx.num_updates == 5
    resumed.train()  # finalizes at once: nothing more to train
    assert resumed.ctx.num_updates == 5


@pytest.mark.parametrize(
    "criteria, minimize, message",
    [
        ("total_loss", False, r"'total_loss' is not a validation metric .* val/multi, val/a"),
        ("val/b", False, r"'val/b' is not a validation metric"),
        (
            "val/multi",
            True,
            r"is an accuracy \(higher is better\) but .*minimize is true: set it to false",
        ),
    ],
)
def test_early_stop_criteria_refused(criteria, minimize, message):
    config = OmegaConf.create(
        {"enabled": True, "patience": 1, "criteria": criteria, "minimize": minimize}
    )
    with pytest.raises(ConfigError, match=message):
        EarlyStopping(config, ["multi", "a"], "synthetic")


def test_early_stop_accepts_mmf_metric_names():
    config = OmegaConf.create(
        {"enabled": True, "patience": 1, "criteria": "val/synthetic/accuracy", "minimize": False}
    )
    assert EarlyStopping(config, ["multi", "a"], "synthetic").key == "multi"


@pytest.fixture(scope="module")
def base_config():
    from mmf.utils.configuration import Configuration

    import mla_plugin

    mla_plugin.register()

    args = argparse.Namespace(opts=[f"config={SYNTHETIC}"], config_override=None)
    return Configuration(args).get_config()


@pytest.mark.parametrize(
    "changes, message",
    [
        (
            {"training.max_epoch": 5},
            r"unknown config key training.max_epoch; valid keys of training: .*max_epochs",
        ),
        ({"training.batchsize": 8}, r"unknown config key training.batchsize; .*batch_size"),
        ({"training.early_stop.patiense": 3}, r"unknown config key training.early_stop.patiense"),
        ({"evaluation.predictt": True}, r"unknown config key evaluation.predictt; .*predict"),
        ({"checkpoint.resum": True}, r"unknown config key checkpoint.resum; .*resume"),
        (
            {"scheduler.kind": "x"},
            r"unknown config key scheduler.kind; valid keys of scheduler: params, type",
        ),
        ({"training.batch_size": "8"}, r"training.batch_size = '8' is a string; expected a number"),
        (
            {"training.clip_gradients": "yes"},
            r"training.clip_gradients = 'yes' is a string; expected a bool",
        ),
        ({"training.batch_size": 0}, r"training.batch_size = 0: expected an integer >= 1"),
        ({"training.batch_size": 2.5}, r"training.batch_size = 2.5: expected an integer >= 1"),
        ({"training.max_epochs": 0}, r"training.max_epochs = 0: expected an integer >= 1, or null"),
        ({"training.max_epochs": None, "training.max_updates": None}, r"both null: set one"),
        ({"training.evaluation_interval": 0}, r"training.evaluation_interval = 0"),
        ({"training.num_workers": -1}, r"training.num_workers = -1: expected an integer >= 0"),
        (
            {"training.clip_norm_mode": "question"},
            r"clip_norm_mode = 'question': expected one of \['all'\]",
        ),
        ({"training.max_grad_l2_norm": 0}, r"max_grad_l2_norm = 0: expected a number > 0"),
        ({"training.early_stop.patience": -1}, r"early_stop.patience = -1"),
        ({"training.fast_read": True}, r"training.fast_read = True is not honoured: .*fast-read"),
        ({"checkpoint.max_to_keep": 3}, r"checkpoint.max_to_keep = 3 is not honoured"),
        (
            {"optimizer.enable_state_sharding": True},
            r"enable_state_sharding = True is not honoured",
        ),
        ({"optimizer.type": "adam"}, r"optimizer.type = 'adam' is neither .* known: .*Adam, .*SGD"),
        (
            {"optimizer.type": "Adam"},  # synthetic's SGD params carry momentum
            r"unknown config key optimizer.params.momentum: Adam takes .*betas",
        ),
        ({"optimizer.params.lr": 0}, r"optimizer.params.lr = 0: expected a number > 0"),
        ({"optimizer.params.lr": "fast"}, r"optimizer.params.lr = 'fast': expected a number > 0"),
        (
            {"scheduler.params.step_size": 0},
            r"scheduler.params.step_size = 0: expected an integer >= 1",
        ),
        (
            {"scheduler.params.step": 3},
            r"unknown config key scheduler.params.step: StepLR takes .*step_size",
        ),
        (
            {"scheduler.type": "nosuch"},
            r"scheduler.type = 'nosuch' is not a registered scheduler; known: .*step_lr",
        ),
    ],
)
def test_mmf_sections_refused_naming_the_key(base_config, changes, message):
    config = OmegaConf.create(OmegaConf.to_container(base_config))
    for key, value in changes.items():
        OmegaConf.update(config, key, value, force_add=True)
    with pytest.raises(ConfigError, match=message):
        validate_mmf_sections(config)


def test_mmf_sections_of_the_project_configs_pass(base_config):
    validate_mmf_sections(base_config)


def test_typo_in_a_config_file_stops_the_run_before_training(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(f"includes:\n  - {os.path.join(REPO, SYNTHETIC)}\ntraining:\n  max_epoch: 3\n")
    with pytest.raises(ConfigError, match=r"unknown config key training.max_epoch; "):
        make_trainer(str(tmp_path / "save"), config=str(path))
