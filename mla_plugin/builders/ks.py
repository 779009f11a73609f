"""``ks``: Kinetics-Sounds (audio, video) in its owners' layout; see :mod:`mla_plugin.data.ks`."""

from mmf.common.registry import registry

from mla_plugin.builders.media import MediaBuilder
from mla_plugin.data import ks


@registry.register_builder("ks")
class KineticsSoundsBuilder(MediaBuilder):
    NAME = "ks"
    MODULE = ks
    EXTRA_PATHS = ()
