"""Checks of the plugin's config sections against their documented defaults, before
anything is built: a typo or a wrong type is an error naming the key, never ignored.

The schema of ``model_config.<model>`` and ``dataset_config.<dataset>`` is the
package's default YAML for it (``mla_plugin/configs/{models,datasets}/<name>.yaml``), and
that of ``protocol`` is ``mla_plugin/configs/protocol.yaml`` (which every model YAML of
the plugin includes, and which the plugin merges under MMF's models' configs): every valid
key is there with a default whose kind (bool, number, string, list, mapping) the value
must match (:mod:`mla_plugin.config_schema`).  A ``null``, ``???`` or interpolated default
accepts any value.  A model's or dataset's numeric switches must lie in the range their
YAML declares in the key's trailing comment (``# range: (0, inf)``; ``# choices: a | b``
for a string), checked by :func:`~mla_plugin.config_schema.check_declared`.  These YAML
files are the only home of the defaults: the code reads the merged config without
fallbacks.
"""

import os

from omegaconf import OmegaConf

from mla_plugin.config_schema import (
    ConfigError,
    check_declared,
    check_section,
    defaults_of,
    resolved,
)

__all__ = ["PROTOCOL_YAML", "ConfigError", "check_section", "defaults_of", "resolved", "validate"]

PROTOCOL_YAML = os.path.join(os.path.dirname(__file__), "configs", "protocol.yaml")


def validate(config, model_cls, builder_cls) -> None:
    """Check ``model_config.<model>``, ``dataset_config.<dataset>`` and ``protocol``, then
    MMF's own sections (:mod:`mla_plugin.mmf_config`)."""
    from mla_plugin.mmf_config import validate_mmf_sections  # MMF's sections (loads MMF)

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
        check_declared(path, section, yaml_path)
    validate_mmf_sections(config)
