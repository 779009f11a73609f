"""MMF dataset builders (registered with ``@registry.register_builder``)."""
from mla_plugin.datasets import synthetic  # noqa: F401
from mla_plugin.datasets import avdigits, features  # noqa: F401,E402
