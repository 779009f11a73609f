"""The schema check the config checks share: a section against its documented defaults
(the YAML that is their one home), where a typo or a wrong kind is an error naming the key.
Plain OmegaConf, no MMF import: used by :mod:`mla_plugin.config_validation` (the plugin's
sections) and :mod:`mla_plugin.mmf_config` (MMF's)."""

from collections.abc import Iterable, Mapping
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import InterpolationToMissingValueError, MissingMandatoryValue


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
