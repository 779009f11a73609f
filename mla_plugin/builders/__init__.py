"""MMF dataset builders (registered with ``@registry.register_builder``)."""
from mla_plugin.builders import synthetic  # noqa: F401
from mla_plugin.builders import avdigits, cremad, features, food101, iemocap, ks, mvsa  # noqa: F401,E402
