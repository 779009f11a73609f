"""Data-derived model settings: fill ``multimodal`` from the dataset before the model is built.

MMF configs are static, but a dataset such as ``features`` only knows its modalities, class
count and feature sizes once its files are read.  The trainer loads the datasets before it
builds the model, so a builder derived from :class:`DataDrivenBuilder` fills, in the run's
config (``registry.get("config")``), whatever the experiment config left open:

- ``multimodal.modalities: null`` -> the dataset's modalities (for ``features``: every
  ``x_<modality>`` key of the files, in file order);
- ``multimodal.num_classes: null`` -> the dataset's class count;
- ``multimodal.encoders.<m>`` absent -> a copy of ``multimodal.encoders.default``;
- ``in_dim: auto`` in an encoder's params -> the flattened feature size of modality ``m``.

Every model's config reads these through ``${multimodal.*}`` interpolations, which resolve
when the model is built, so ``model=<any method>`` follows the data.  Explicit values are
checked against the data instead (a wrong ``in_dim``, an unknown modality or a class count
below the labels raise :class:`~mla_plugin.data.errors.DataError` before training).
"""

import math
import os
from pathlib import Path

from mmf.common.registry import registry
from omegaconf import OmegaConf, open_dict

from mla_plugin.builders.base import MultimodalBuilder
from mla_plugin.data.errors import DataError
from mla_plugin.data.reader import HasFeatureShapes, Reader

DEFAULT_ENCODER_KEY = "default"
AUTO = "auto"


def resolve_path(value) -> Path | None:
    """A configured path (``~`` and ``$VARS`` expanded), or None when unset."""
    if value is None or str(value).strip() in ("", "null", "None"):
        return None
    return Path(os.path.expandvars(os.path.expanduser(str(value))))


def as_list(value) -> list | None:
    """A list from config: a list, or a command-line string such as ``[a,b]`` or ``a,b``
    (MMF passes unquoted lists as strings); None stays None."""
    if value is None:
        return None
    if isinstance(value, str):
        items = [v.strip().strip("'\"") for v in value.strip().strip("[]").split(",")]
        return [v for v in items if v]
    return list(value)


def _flat_dim(shape) -> int:
    return int(math.prod(shape)) if shape else 1


def _check_encoder(name: str, m: str, spec, shape) -> None:
    params = spec.get("params", {}) or {}
    kind = spec.get("type")
    if kind in ("mlp", "identity") and "in_dim" in params and params["in_dim"] != AUTO:
        if int(params["in_dim"]) != _flat_dim(shape):
            raise DataError(
                f"{name}: modality '{m}' has features of shape {tuple(shape)} "
                f"({_flat_dim(shape)} values) but multimodal.encoders.{m}.params.in_dim is "
                f"{params['in_dim']} (set it to {_flat_dim(shape)} or to 'auto')"
            )
    if kind in ("conv", "resnet18") and len(shape) >= 3 and "in_channels" in params:
        channels = shape[1] if (params.get("frames") or len(shape) == 4) else shape[0]
        if int(params["in_channels"]) != int(channels):
            raise DataError(
                f"{name}: modality '{m}' has inputs of shape {tuple(shape)} ({channels} channels)"
                f" but multimodal.encoders.{m}.params.in_channels is {params['in_channels']}"
            )


def fill_multimodal_config(root, reader: Reader, name: str) -> None:
    """Fill (or check) ``root.multimodal`` from ``reader`` (see the module docstring).

    ``reader`` gives ``modalities``, ``num_classes`` and optionally ``feature_shapes``
    (:class:`~mla_plugin.data.reader.HasFeatureShapes`: ``{modality: per-sample shape}``).
    Does nothing when ``root`` has no ``multimodal``.
    """
    if root is None or root.get("multimodal") is None:
        return
    mm = root.multimodal
    shapes = dict(reader.feature_shapes or {}) if isinstance(reader, HasFeatureShapes) else {}
    with open_dict(mm):
        if mm.get("modalities") is None:
            mm.modalities = list(reader.modalities)
        elif isinstance(mm.modalities, str):
            mm.modalities = as_list(mm.modalities)
        mods = list(mm.modalities)
        unknown = [m for m in mods if m not in reader.modalities]
        if unknown:
            raise DataError(
                f"{name}: multimodal.modalities {unknown} are not in the data; "
                f"available: {list(reader.modalities)}"
            )
        if mm.get("num_classes") is None:
            mm.num_classes = int(reader.num_classes)
        elif int(mm.num_classes) < int(reader.num_classes):
            raise DataError(
                f"{name}: multimodal.num_classes is {mm.num_classes} but the data has "
                f"{reader.num_classes} classes"
            )
        if mm.get("encoders") is None:
            mm.encoders = {}
        encoders = mm.encoders
        default = encoders.get(DEFAULT_ENCODER_KEY)
        for m in mods:
            if encoders.get(m) is None:
                if default is None:
                    raise DataError(
                        f"{name}: no encoder for modality '{m}': add "
                        f"multimodal.encoders.{m} or multimodal.encoders.default"
                    )
                encoders[m] = OmegaConf.create(OmegaConf.to_container(default, resolve=True))
            spec = encoders[m]
            params = spec.get("params")
            if params is not None and params.get("in_dim") == AUTO:
                if m not in shapes:
                    raise DataError(
                        f"{name}: in_dim 'auto' for modality '{m}' but the dataset "
                        f"does not report its feature shape"
                    )
                params.in_dim = _flat_dim(shapes[m])
            if m in shapes:
                _check_encoder(name, m, spec, shapes[m])


class DataDrivenBuilder(MultimodalBuilder):
    """A :class:`MultimodalBuilder` that fills the run's ``multimodal`` settings from the
    data it loads (see the module docstring)."""

    def load(self, config, dataset_type="train", *args, **kwargs):
        dataset = super().load(config, dataset_type, *args, **kwargs)
        root = registry.get("config", no_warning=True)
        # only the run's own dataset fills its config (not a builder used on the side)
        if root is not None and self.dataset_name in str(root.get("datasets") or "").split(","):
            fill_multimodal_config(root, dataset.reader, self.dataset_name)
        return dataset
