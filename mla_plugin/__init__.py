"""MLA (Multimodal Learning with Alternating Unimodal Adaptation) as an MMF plugin.

Importing this package loads nothing: the method's math (:mod:`mla_plugin.core`) and the
readers (:mod:`mla_plugin.data`) import neither MMF nor the bridge.  The MMF layer
(models, dataset builders, trainers) is registered with MMF's registry by
:func:`register`, which MMF calls when it imports the user directory ``projects/mla``
(``env.user_dir`` in the configs); other programs call it themselves.
"""

__version__ = "0.1.0"


def register() -> None:
    """Register the plugin's models, dataset builders and trainers with MMF (idempotent:
    Python imports each module once)."""
    from mla_plugin import builders, models, trainers  # noqa: F401
    from mla_plugin.models.mmf_adapter import supply_plugin_defaults

    supply_plugin_defaults()
