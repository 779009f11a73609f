"""projects/mla/configs/presets/{paper,code}.yaml: each sets every method switch, and a
config that includes one (one line) runs with exactly those values."""

import glob
import os

import pytest
from omegaconf import OmegaConf

from tests.support import QUICK, REPO, make_trainer, read_metrics

PRESETS = os.path.join(REPO, "projects", "mla", "configs", "presets")
MODELS = os.path.join(REPO, "mla_plugin", "configs", "models")
# keys of a model section that are wiring or data, not method switches
NOT_SWITCHES = {"modalities", "encoders", "num_classes", "num_train_samples", "fixed_weights"}


def preset(name):
    return OmegaConf.to_container(OmegaConf.load(os.path.join(PRESETS, f"{name}.yaml")))


def switches(model):
    section = OmegaConf.load(os.path.join(MODELS, f"{model}.yaml")).model_config[model]
    return set(section) - NOT_SWITCHES


@pytest.mark.parametrize("name", ["paper", "code"])
def test_preset_sets_every_switch(name):
    p = preset(name)
    for model in ("mla", "qmf", "ogm_ge"):
        assert set(p["model_config"][model]) == switches(model), model
    for path in glob.glob(os.path.join(REPO, "mla_plugin", "configs", "datasets", "*.yaml")):
        dataset = os.path.basename(path)[:-5]
        if "mask_scheme" in OmegaConf.load(path).dataset_config[dataset]:
            assert set(p["dataset_config"][dataset]) == {"mask_scheme"}, dataset
    assert set(p["protocol"]) == {"selection"}


def test_presets_differ_where_the_paper_and_the_code_do():
    paper, code = preset("paper"), preset("code")
    assert (
        paper["model_config"]["mla"]["hgm"] == "owm" and code["model_config"]["mla"]["hgm"] == "off"
    )
    assert (paper["protocol"]["selection"], code["protocol"]["selection"]) == (
        "val",
        "test_max",
    )
    assert paper["dataset_config"]["synthetic"]["mask_scheme"] == "bernoulli"
    assert code["dataset_config"]["synthetic"]["mask_scheme"] == "cpm_atleast1"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["paper", "code"])
@pytest.mark.parametrize("model", ["mla", "qmf", "ogm_ge"])
def test_config_including_a_preset_resolves_its_switches(name, model, tmp_path):
    """The preset is merged after the model's and dataset's default YAMLs (MMF merges
    those before the user config and its includes), so its values win; the command line
    still overrides it."""
    config = tmp_path / "exp.yaml"
    synthetic = os.path.join(REPO, "projects", "mla", "configs", "synthetic.yaml")
    config.write_text(f"includes: [{synthetic}, {os.path.join(PRESETS, name + '.yaml')}]\n")
    save = str(tmp_path / "save")
    trainer = make_trainer(
        save, f"model={model}", *QUICK, "training.max_epochs=1", config=str(config)
    )
    p = preset(name)
    got = trainer.config.model_config[model]
    for key, value in p["model_config"][model].items():
        assert got[key] == value, (model, key)
    assert (
        trainer.config.dataset_config.synthetic.mask_scheme
        == p["dataset_config"]["synthetic"]["mask_scheme"]
    )
    assert trainer.ctx.selection == p["protocol"]["selection"]
    if model == "mla":
        trainer.train()
        assert read_metrics(save)["selection"] == p["protocol"]["selection"]
        hooks = [h.name for h in trainer.hooks]
        assert hooks == (["hgm"] if name == "paper" else [])
        if name == "paper":
            assert trainer.hooks[0].mean.mode == "epoch" and trainer.hooks[0].project_bias
    override = make_trainer(
        str(tmp_path / "o"), f"model={model}", *QUICK, "protocol.selection=last", config=str(config)
    )
    assert override.ctx.selection == "last"


def test_balancebenchmark_preset_is_its_protocol(tmp_path):
    """presets/balancebenchmark.yaml: AdamW lr 1e-3, weight decay 0.01, StepLR(10, 0.1),
    30 epochs, batch 32, selection on val (test_max only as a switch); a config including
    it builds exactly that optimizer and schedule."""
    config = tmp_path / "exp.yaml"
    synthetic = os.path.join(REPO, "projects", "mla", "configs", "synthetic.yaml")
    bb = os.path.join(PRESETS, "balancebenchmark.yaml")
    config.write_text(f"includes: [{synthetic}, {bb}]\n")
    trainer = make_trainer(str(tmp_path / "s"), "model=concat", config=str(config))
    ctx = trainer.ctx
    assert type(ctx.optimizer).__name__ == "AdamW"
    group = ctx.optimizer.param_groups[0]
    assert (group["lr"], group["weight_decay"]) == (1e-3, 0.01)
    assert (ctx.lr_scheduler.step_size, ctx.lr_scheduler.gamma) == (10, 0.1)
    assert (ctx.max_epochs, trainer.config.training.batch_size) == (30, 32)
    assert ctx.selection == "val"
    switched = make_trainer(
        str(tmp_path / "t"), "model=concat", "protocol.selection=test_max", config=str(config)
    )
    assert switched.ctx.selection == "test_max"
