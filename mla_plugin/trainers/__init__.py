"""MMF trainers (registered with ``@registry.register_trainer``) and schedulers."""

from mla_plugin.trainers import multimodal, schedulers  # noqa: F401
