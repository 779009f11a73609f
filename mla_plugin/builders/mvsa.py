"""``mvsa``: MVSA-Single (text, image) in its owners' layout; see :mod:`mla_plugin.data.mvsa`."""

from mmf.common.registry import registry

from mla_plugin.builders.media import MediaBuilder
from mla_plugin.data import mvsa


@registry.register_builder("mvsa")
class MVSABuilder(MediaBuilder):
    NAME = "mvsa"
    MODULE = mvsa
    EXTRA_PATHS = ()
