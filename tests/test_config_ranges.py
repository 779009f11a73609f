"""Every numeric switch of every model and dataset declares its range in its YAML
(``# range: ...``), the annotations parse, and a value outside its range stops the run
before training, naming the key, the value and the range."""

import glob
import os

import pytest

from mla_plugin.config_schema import (
    ConfigError,
    check_declared,
    declared_ranges,
    numeric_keys,
)
from tests.support import REPO, make_trainer

CONFIGS = os.path.join(REPO, "mla_plugin", "configs")
YAMLS = sorted(
    glob.glob(os.path.join(CONFIGS, "models", "*.yaml"))
    + glob.glob(os.path.join(CONFIGS, "datasets", "*.yaml"))
)
# keys whose default is null but that take a number when set: they must declare a range too
NULLABLE_NUMBERS = {
    "model_config.dcca.cca_top_k",
    "model_config.dccae.cca_top_k",
    "model_config.ogm_ge.ogm_seed",
    "model_config.qmf.num_train_samples",
    "dataset_config.avdigits.max_per_class",
    *(f"dataset_config.{d}.limit" for d in ("cremad", "food101", "iemocap", "ks", "mvsa")),
}
TINY = [
    "dataset_config.synthetic.sizes.train=64",
    "dataset_config.synthetic.sizes.val=32",
    "dataset_config.synthetic.sizes.test=32",
    "dataset_config.synthetic.num_classes=4",
    "training.batch_size=16",
    "training.max_epochs=1",
]


def _covered(key, declared):
    """``key`` or a mapping above it (a range on a mapping bounds its numbers)."""
    parts = key.split(".")
    return any(".".join(parts[:n]) in declared for n in range(len(parts), 0, -1))


def test_the_walk_finds_every_registered_model_and_dataset():
    from mmf.common.registry import registry

    import mla_plugin

    mla_plugin.register()
    # every plugin model and dataset registered with a YAML of its own is walked
    walked = 0
    for kind, mapping in (("models", "model_name_mapping"), ("datasets", "builder_name_mapping")):
        for name, cls in registry.mapping[mapping].items():
            path = getattr(cls, "config_path", lambda: None)()
            if path and os.path.dirname(os.path.abspath(path)) == os.path.join(CONFIGS, kind):
                assert os.path.abspath(path) in YAMLS, name
                walked += 1
    assert walked >= len(YAMLS) - 1  # (features' YAML serves one builder, ...)


@pytest.mark.parametrize("path", YAMLS, ids=lambda p: os.path.relpath(p, CONFIGS))
def test_every_numeric_switch_declares_its_range(path):
    declared = declared_ranges(path)  # also: every annotation parses
    section_keys = numeric_keys(path)
    stem = os.path.splitext(os.path.basename(path))[0]
    nullable = [k for k in NULLABLE_NUMBERS if k.split(".")[1] == stem]
    missing = [k for k in section_keys + nullable if not _covered(k, declared)]
    assert not missing, (
        f"{os.path.relpath(path, REPO)}: numeric keys without '# range: ...' in their "
        f"line's comment (docs/reliability.md, 'Declared ranges'): {missing}"
    )
    for key, spec in declared.items():  # the default itself lies in its range
        if not spec.choices:
            check_declared(key.rsplit(".", 1)[0], _defaults_under(path, key), path)


def _defaults_under(path, key):
    from omegaconf import OmegaConf

    node = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    for part in key.split(".")[:-1]:
        node = node[part]
    return node


SAMPLE = """\
model_config:
  m:
    # alpha: 3  # range: [7, 8]   (a comment line: not a key)
    alpha: 0.5          # range: (0, 1]; prose after the semicolon
    blocks: 3           # range: [1, inf)
    temperature: 10     # range: real (0, inf)
    top_k: null         # range: int [1, inf); null = all
    widths: [128, 64]   # range: [1, inf); each width
    sizes: {a: 2, b: 3} # range: [1, inf)
    mode: fast          # choices: fast | slow
    name: "a # b"       # not an annotation: no range here
    nested:
      rate: 0.25        # range: [0, 1)
"""


def _sample(tmp_path, text=SAMPLE):
    path = tmp_path / "m.yaml"
    path.write_text(text)
    return str(path)


def test_annotations_parse_into_ranges_and_kinds(tmp_path):
    declared = declared_ranges(_sample(tmp_path))
    keys = ("alpha", "blocks", "temperature", "top_k", "widths", "sizes", "mode", "nested.rate")
    assert sorted(declared) == sorted(f"model_config.m.{k}" for k in keys)
    alpha = declared["model_config.m.alpha"]
    assert (alpha.low, alpha.high, alpha.low_closed, alpha.high_closed) == (0, 1, False, True)
    assert alpha.line == 4 and not alpha.integer
    assert declared["model_config.m.blocks"].integer  # its default is an int
    assert not declared["model_config.m.temperature"].integer  # 'real' overrides
    assert declared["model_config.m.top_k"].integer  # 'int' on a null default
    assert declared["model_config.m.mode"].choices == ("fast", "slow")


@pytest.mark.parametrize(
    "override, message",
    [
        (
            {"alpha": 0.0},
            r"model_config.m.alpha = 0.0 is outside its declared range: expected a number in \(0, 1\]",
        ),
        ({"alpha": 1.5}, r"alpha = 1.5 is outside .* \(0, 1\]"),
        ({"alpha": "x"}, r"alpha = 'x' is outside .*a number in"),
        ({"blocks": 0}, r"blocks = 0 is outside .*an integer in \[1, inf\)"),
        ({"blocks": 2.5}, r"blocks = 2.5 is outside .*an integer in \[1, inf\)"),
        ({"blocks": True}, r"blocks = True is outside"),
        ({"temperature": -1}, r"temperature = -1 is outside .*a number in \(0, inf\)"),
        ({"top_k": 0.5}, r"top_k = 0.5 is outside .*an integer in \[1, inf\)"),
        ({"widths": [128, 0]}, r"widths = \[128, 0\] holds 0, which is outside .*\[1, inf\)"),
        ({"sizes": {"a": 2, "b": -1}}, r"sizes = .* holds -1, which is outside"),
        (
            {"mode": "medium"},
            r"mode = 'medium' is outside its declared choices: expected one of fast \| slow",
        ),
        ({"nested": {"rate": 1.0}}, r"nested.rate = 1.0 is outside .*\[0, 1\)"),
    ],
)
def test_a_value_outside_its_range_names_key_value_range_and_file(tmp_path, override, message):
    path = _sample(tmp_path)
    good = {"alpha": 1.0, "blocks": 1, "temperature": 2, "top_k": None, "widths": [1]}
    good.update({"sizes": {"a": 1}, "mode": "slow", "nested": {"rate": 0.0}})
    check_declared("model_config.m", good, path)  # the edges that are inside pass
    with pytest.raises(ConfigError, match=message) as err:
        check_declared("model_config.m", {**good, **override}, path)
    assert f"{path}, line " in str(err.value)


@pytest.mark.parametrize(
    "line, message",
    [
        ("x: 1  # range: [0, 1", r"line 2 \(s.x\): '# range: \[0, 1' is not an interval"),
        ("x: 1  # range: [0, inf]", r"is empty or closed at infinity"),
        ("x: 1  # range: (2, 1)", r"is empty or closed at infinity"),
        ("x: 1  # range: (a, 1)", r"is not an interval"),
        ("x: a  # choices: a", r"must list values as a \| b \| c"),
    ],
)
def test_a_malformed_annotation_names_file_line_and_key(tmp_path, line, message):
    path = _sample(tmp_path, f"s:\n  {line}\n")
    with pytest.raises(ConfigError, match=message):
        declared_ranges(path)


@pytest.mark.parametrize(
    "opt, message",
    [
        (
            "model_config.mla.hgm_alpha_const=-0.1",
            r"config key model_config.mla.hgm_alpha_const = -0.1 is outside its declared "
            r"range: expected a number in \(0, inf\) \(mla_plugin/configs/models/mla.yaml, line",
        ),
        (
            "dataset_config.synthetic.missing_rate=1.0",
            r"dataset_config.synthetic.missing_rate = 1.0 is outside .* \[0, 1\)",
        ),
        (
            "dataset_config.synthetic.sizes.val=0",
            r"dataset_config.synthetic.sizes = .* holds 0, which is outside .*\[1, inf\)",
        ),
    ],
)
def test_out_of_range_switch_stops_the_run_before_training(tmp_path, opt, message):
    with pytest.raises(ConfigError, match=message):
        make_trainer(str(tmp_path / "save"), *TINY, opt)
