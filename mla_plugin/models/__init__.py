"""MMF models (registered with ``@registry.register_model``): MLA and the baselines,
all on encoders from the same factory (:func:`mla_plugin.core.encoders.build_encoder`)."""
from mla_plugin.models import concat, late_fusion, mla  # noqa: F401
from mla_plugin.models import bigated, film, ogm_ge, qmf, sum, unimodal  # noqa: F401
