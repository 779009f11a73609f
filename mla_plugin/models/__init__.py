"""MMF models (registered with ``@registry.register_model``): MLA and the baselines,
all on encoders from the same factory (:func:`mla_plugin.core.encoders.build_encoder`)."""

from mla_plugin.models import (  # noqa: F401
    ae,
    bigated,
    cca,
    concat,
    cpm_net,
    cra,
    dcca,
    dccae,
    film,
    if_mmin,
    late_fusion,
    mla,
    mmin,
    ogm_ge,
    qmf,
    sum,
    tate,
    unimodal,
)
