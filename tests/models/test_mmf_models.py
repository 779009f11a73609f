"""MMF's own models as methods of the plugin's trainer: each of the six the bridge has
configs for builds from them (random init, no download), trains one joint step per
batch and writes metrics.json with the fused accuracy and null per-modality accuracy;
in-process on a tiny dataset of MMF's sample fields (tests/models/mmf_fields.py)."""

import pytest
import torch
from omegaconf import OmegaConf

from mla_plugin.models.mmf_adapter import MMFModelAdapter
from tests.models.mmf_fields import tiny_model_overrides, write_config
from tests.support import make_trainer, read_metrics

MMF_MODELS = ["unimodal_text", "unimodal_image", "concat_bow", "concat_bert", "late_fusion", "mmbt"]


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    return write_config(tmp_path_factory.mktemp("mmf_fields") / "mmf_fields.yaml")


def _train(save_dir, config, model, *opts):
    trainer = make_trainer(
        save_dir, f"model={model}", *tiny_model_overrides(model), *opts, config=config
    )
    trainer.train()
    return trainer, read_metrics(save_dir)


@pytest.mark.parametrize("model", MMF_MODELS)
def test_mmf_model_trains_and_reports_fused_accuracy(tmp_path, config, model):
    from mmf.common.registry import registry

    trainer, metrics = _train(str(tmp_path), config, model, "training.max_epochs=1")
    assert isinstance(trainer.model, MMFModelAdapter)
    assert type(trainer.model.model) is registry.get_model_class(model)  # MMF's class
    assert trainer.ctx.num_updates == trainer.ctx.num_batches  # one joint step per batch
    assert metrics["method"] == model and metrics["modalities"] == ["text", "image"]
    for split in ("val", "test"):
        assert 0.0 <= metrics[split]["multi"] <= 1.0
        for modality in ("text", "image"):
            if model == "late_fusion":  # its text and image classifiers' own logits
                assert 0.0 <= metrics[split][modality] <= 1.0
            else:  # a fused prediction only
                assert metrics[split][modality] is None


def test_mmf_model_learns_on_its_own_loss(tmp_path, config):
    """concat_bow beats the majority class on data where both modalities carry the
    class; MMF's cross_entropy (the bridge config's ``losses``) is the loss trained."""
    trainer, metrics = _train(str(tmp_path), config, "concat_bow", "optimizer.params.lr=0.05")
    assert trainer.model.own_losses
    assert metrics["test"]["multi"] > metrics["majority"]["test"]["rate"]["multi"] + 0.2
    batch = trainer.ctx.to_device(next(iter(trainer.ctx.train_loader)))
    step = next(trainer.model.training_steps(batch, 0))
    expected = torch.nn.functional.cross_entropy(step.outputs["scores"], batch.targets)
    assert torch.allclose(step.loss, expected)


def test_a_model_without_scores_is_a_clear_error():
    from mmf.models.base_model import BaseModel

    class NoScores(BaseModel):
        def build(self):
            self.layer = torch.nn.Linear(2, 2)

        def forward(self, sample_list):
            return {"logits": self.layer(sample_list["x"])}

    model = NoScores(OmegaConf.create({"losses": []}))
    model.build()
    model.init_losses()
    adapter = MMFModelAdapter(model, "no_scores")
    with pytest.raises(ValueError, match=r"no_scores.*no 'scores'"):
        adapter({"x": torch.randn(3, 2)})


def test_project_model_configs_only_set_keys_the_bridge_configs_have():
    """projects/mla/configs/mmf_models/all.yaml, merged over each bridge config, passes
    the plugin's config check (a typo there would be an unknown key)."""
    import os

    from mmf.utils.configuration import load_yaml

    from mla_bridge.models import model_config_path
    from mla_plugin.config_validation import check_section, defaults_of
    from tests.support import REPO

    ours = load_yaml(os.path.join(REPO, "projects/mla/configs/mmf_models/all.yaml"))
    assert sorted(ours.model_config) == ["concat_bert", "late_fusion", "mmbt", "unimodal_text"]
    for model in ours.model_config:
        path = f"model_config.{model}"
        defaults = defaults_of(model_config_path(model), path)
        merged = OmegaConf.merge(OmegaConf.create(defaults), ours.model_config[model])
        check_section(path, OmegaConf.to_container(merged), defaults)
        assert merged.text_encoder.params.random_init is True


def test_the_plugin_supplies_the_protocol_section_to_mmf_models(tmp_path, config):
    """The bridge's model configs have no ``protocol`` section (the bridge stands alone):
    the plugin merges its defaults under them, so a run of an MMF model has the section
    and ``protocol.selection`` works on the command line."""
    from mmf.common.registry import registry
    from mmf.utils.configuration import load_yaml

    from mla_plugin.config_validation import PROTOCOL_YAML

    opts = ["model=concat_bow", *tiny_model_overrides("concat_bow"), "training.max_epochs=1"]
    default = make_trainer(str(tmp_path / "d"), *opts, config=config)
    assert "protocol" not in load_yaml(registry.get_model_class("concat_bow").config_path())
    assert dict(default.config.protocol) == dict(load_yaml(PROTOCOL_YAML).protocol)
    last = make_trainer(str(tmp_path / "l"), *opts, "protocol.selection=last", config=config)
    assert last.ctx.selection == "last" and default.ctx.selection == "val"
    # and the trainer's own training keys (mla_plugin/configs/trainer.yaml)
    assert list(default.config.training.callbacks)[-1] == "checkpoint"
