"""``iemocap``: IEMOCAP 4-class (audio, face image, text) in its owners' layout; see :mod:`mla_plugin.data.iemocap`."""

from mmf.common.registry import registry

from mla_plugin.builders.media import MediaBuilder
from mla_plugin.data import iemocap


@registry.register_builder("iemocap")
class IEMOCAPBuilder(MediaBuilder):
    NAME = "iemocap"
    MODULE = iemocap
    EXTRA_PATHS = ("faces_dir",)
