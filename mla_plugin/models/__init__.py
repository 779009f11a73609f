"""MMF models (registered with ``@registry.register_model``): MLA and the baselines,
all on encoders from the same factory (:func:`mla_plugin.core.encoders.build_encoder`)."""

from mla_plugin.models import bigated, concat, film, late_fusion, mla, ogm_ge, qmf, sum, unimodal  # noqa: F401  # noqa: F401

# isort: split
from mla_plugin.models import cca, dcca, dccae  # noqa: F401  (Table 2: CCA family)
