"""MLA (Multimodal Learning with Alternating Unimodal Adaptation) as an MMF plugin.

Importing this package makes sure the MMF bridge is on and registers the plugin's
models, dataset builders and trainers with MMF's registry.  The method's math is in
:mod:`mla_plugin.core` (no MMF import); this package's other modules are the MMF layer.
"""

import mla_bridge

mla_bridge.install()

from mla_plugin import builders, models, trainers  # noqa: E402,F401  (registration)

__version__ = "0.1.0"
