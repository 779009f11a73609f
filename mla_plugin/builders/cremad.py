"""``cremad``: CREMA-D (audio, video) in its owners' layout; see :mod:`mla_plugin.data.cremad`."""

from mmf.common.registry import registry

from mla_plugin.builders.media import MediaBuilder
from mla_plugin.data import cremad


@registry.register_builder("cremad")
class CremaDBuilder(MediaBuilder):
    NAME = "cremad"
    MODULE = cremad
    EXTRA_PATHS = ("frames_dir",)
