"""A typo or a wrong type in the plugin's config sections stops the run before
training, with an error naming the key (and the valid keys for a typo)."""

import os

import pytest
from omegaconf import OmegaConf

from mla_plugin.config_validation import ConfigError, check_section, resolved
from tests.support import REPO, SYNTHETIC, make_trainer


def _config_file(tmp_path, body):
    path = tmp_path / "exp.yaml"
    path.write_text(f"includes:\n  - {os.path.join(REPO, SYNTHETIC)}\n{body}")
    return str(path)


@pytest.mark.parametrize(
    "body, message",
    [
        (
            "model_config:\n  mla:\n    hgm_alpah: 0.1\n",
            r"unknown config key model_config.mla.hgm_alpah; valid keys of model_config.mla: .*hgm_alpha",
        ),
        (
            "dataset_config:\n  synthetic:\n    sigal: [1.0, 2.0]\n",
            r"unknown config key dataset_config.synthetic.sigal; valid keys of .*signal",
        ),
        (
            "protocol:\n  selecton: last\n",
            r"unknown config key protocol.selecton; valid keys of protocol: .*selection",
        ),
        (
            "model_config:\n  mla:\n    p_frob_norm: 'yes'\n",
            r"model_config.mla.p_frob_norm = 'yes' is a string; expected a bool",
        ),
        (
            "dataset_config:\n  synthetic:\n    sizes: 10\n",
            r"dataset_config.synthetic.sizes = 10 is a number; expected a mapping",
        ),
        (
            "dataset_config:\n  synthetic:\n    sizes: {train: 10, vall: 5}\n",
            r"unknown config key dataset_config.synthetic.sizes.vall",
        ),
    ],
)
def test_bad_config_file_is_refused_before_training(tmp_path, body, message):
    with pytest.raises(ConfigError, match=message):
        make_trainer(str(tmp_path / "save"), config=_config_file(tmp_path, body))


def test_command_line_type_error_names_the_key(tmp_path):
    with pytest.raises(
        ConfigError, match=r"model_config.mla.hgm = 1 is a number; expected a string"
    ):
        make_trainer(str(tmp_path), "model_config.mla.hgm=1")


def test_unknown_model_lists_registered_ones(tmp_path):
    with pytest.raises(
        ValueError, match=r"no model named 'mlaa' is registered; registered: .*concat"
    ):
        make_trainer(str(tmp_path), "model=mlaa")


def test_numbers_mix_and_nulls_pass():
    check_section("s", {"a": 1, "b": None, "c": {"d": 2.5}}, {"a": 0.5, "b": 3, "c": {"d": 1}})
    check_section("s", {"enc": {"anything": 1}}, {"enc": "${x.y}"})


def test_unset_mandatory_value_is_named():
    node = OmegaConf.create(
        {
            "multimodal": {"num_classes": "???"},
            "model_config": {"mla": {"num_classes": "${multimodal.num_classes}"}},
        }
    )
    with pytest.raises(ConfigError, match=r"model_config.mla.num_classes has no value"):
        resolved("model_config.mla", node.model_config.mla)


def test_unknown_dataset_is_named_before_interpolations_fail(tmp_path):
    """features.yaml's multimodal section reads dataset_config.features; an unknown
    dataset name used to fail on that interpolation instead of naming itself."""
    with pytest.raises(ValueError, match=r"^no dataset builder named 'featurez' is registered"):
        make_trainer(
            str(tmp_path / "run"),
            "dataset=featurez",
            config="projects/mla/configs/features.yaml",
        )
    assert not os.listdir(tmp_path / "run")  # no empty log file left behind
