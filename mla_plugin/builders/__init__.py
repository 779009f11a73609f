"""MMF dataset builders (registered with ``@registry.register_builder``)."""

from mla_plugin.builders import (  # noqa: F401,E402
    avdigits,
    cremad,
    features,
    food101,
    iemocap,
    ks,
    mvsa,
    synthetic,  # noqa: F401
)
