"""``food101``: UPMC Food-101 (text, image) in its owners' layout; see :mod:`mla_plugin.data.food101`."""

from mmf.common.registry import registry

from mla_plugin.builders.media import MediaBuilder
from mla_plugin.data import food101


@registry.register_builder("food101")
class Food101Builder(MediaBuilder):
    NAME = "food101"
    MODULE = food101
    EXTRA_PATHS = ()
