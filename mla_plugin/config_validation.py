"""Checks of the plugin's config sections against their documented defaults, before
anything is built: a typo or a wrong type is an error naming the key, never ignored.

The schema of ``model_config.<model>`` and ``dataset_config.<dataset>`` is the
package's default YAML for it (``mla_plugin/configs/{models,datasets}/<name>.yaml``), and
that of ``protocol`` is ``mla_plugin/configs/protocol.yaml`` (which every model YAML
includes, so MMF merges it into each run's config): every valid key is there with a
default whose kind (bool, number, string, list, mapping) the value must match.  A
``null``, ``???`` or interpolated default accepts any value.  These YAML files are the
only home of the defaults: the code reads the merged config without fallbacks.
"""

import os
from collections.abc import Iterable, Mapping
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import InterpolationToMissingValueError, MissingMandatoryValue

PROTOCOL_YAML = os.path.join(os.path.dirname(__file__), "configs", "protocol.yaml")


class ConfigError(ValueError):
    """A config section has an unknown key, a value of the wrong kind, or no value."""


def _kind(value: Any) -> str:
    for kind, types in (
        ("bool", bool),
        ("number", (int, float)),
        ("string", str),
        ("list", (list, tuple)),
        ("mapping", Mapping),
    ):
        if isinstance(value, types):
            return kind
    return type(value).__name__


def _free(default: Any) -> bool:
    return default is None or (isinstance(default, str) and (default == "???" or "${" in default))


def check_section(
    path: str, section: Mapping, defaults: Mapping, open_keys: Iterable[str] = ()
) -> None:
    """Raise :class:`ConfigError` for a key of ``section`` absent from ``defaults`` or a
    value whose kind differs from its default's; nested mappings are checked too, except
    the keys in ``open_keys`` (free-form, like ``encoders``)."""
    for key, value in section.items():
        where = f"{path}.{key}"
        if key not in defaults:
            raise ConfigError(
                f"unknown config key {where}; valid keys of {path}: "
                f"{', '.join(sorted(map(str, defaults)))}"
            )
        default = defaults[key]
        if key in open_keys or _free(default) or value is None:
            continue
        if _kind(value) != _kind(default):
            raise ConfigError(
                f"config key {where} = {value!r} is a {_kind(value)}; expected a "
                f"{_kind(default)}, like its default {default!r}"
            )
        if _kind(default) == "mapping":
            check_section(where, value, default)


def resolved(path: str, node) -> Mapping:
    """The section as plain Python with interpolations resolved; a clear error for a
    mandatory value left unset."""
    try:
        return OmegaConf.to_container(node, resolve=True, throw_on_missing=True)
    except (MissingMandatoryValue, InterpolationToMissingValueError) as e:
        raise ConfigError(
            f"config key {path}.{e.full_key.split('.')[-1]} has no value (???): set it "
            f"in the experiment config or on the command line"
        ) from None


def defaults_of(yaml_path: str, path: str) -> Mapping:
    """The section at dotted ``path`` of a default YAML, uninterpolated."""
    node = OmegaConf.select(OmegaConf.load(yaml_path), path)
    if node is None:
        raise ConfigError(f"{yaml_path} has no section {path}")
    return OmegaConf.to_container(node, resolve=False)


def validate(config, model_cls, builder_cls) -> None:
    """Check ``model_config.<model>``, ``dataset_config.<dataset>`` and ``protocol``, then
    MMF's own sections (:mod:`mla_plugin.mmf_config`)."""
    from mla_plugin.mmf_config import validate_mmf_sections  # it imports this module

    model, dataset = config.model, config.datasets.split(",")[0]
    checks = [
        (f"model_config.{model}", model_cls.config_path(), ("encoders",)),
        # a builder's OPEN_KEYS take more than one kind (e.g. features' normalize: a mode
        # or {modality: mode}); the builder checks them itself
        (
            f"dataset_config.{dataset}",
            builder_cls.config_path(),
            getattr(builder_cls, "OPEN_KEYS", ()),
        ),
        ("protocol", PROTOCOL_YAML, ()),
    ]
    for path, yaml_path, open_keys in checks:
        if yaml_path is None:
            continue
        node = OmegaConf.select(config, path)
        if node is None:
            raise ConfigError(f"the config has no section {path} (MMF merges it from {yaml_path})")
        section = resolved(path, node)
        section.pop("model", None)  # MMF adds the model's name to its own section
        check_section(path, section, defaults_of(yaml_path, path), open_keys)
    validate_mmf_sections(config)
