"""DCCA -- Deep Canonical Correlation Analysis (Andrew et al., ICML 2013) as a Table-2
baseline: the same model as :mod:`mla_plugin.models.cca` except that the correlation
term trains the networks too.

* f_m = (Linear(s -> ``cca_dim``) ∘ h_m): the encoder plus a linear output layer is the
  view's deep network; corr(f_1(X_1), f_2(X_2)) is the total correlation of its top
  ``cca_top_k`` canonical directions (null = all ``cca_dim``, the trace norm ||T||_tr),
  with the regularised covariances Σ̂_11 + r1 I, Σ̂_22 + r2 I (r1 = r2 = ``cca_reg``);
  see :mod:`mla_plugin.core.correlation`.  M > 2: the sum over modality pairs (ours);
* loss ``CE(fused) - cca_corr_weight · corr``: one joint step per batch.  Stand-in: the
  paper learns f_m unsupervised (-corr alone, full-batch L-BFGS or large minibatches) and
  then fits a classifier on the outputs; here both are trained together, on our minibatches;
* classifier, per-modality logits and missing modalities as in :mod:`~mla_plugin.models.cca`.
"""

from mmf.common.registry import registry

from mla_plugin.models.cca import CCA


@registry.register_model("dcca")
class DCCA(CCA):
    NAME = "dcca"
    DEEP = True

    def _top_k(self):
        k = self.config.cca_top_k
        if k is None:
            return None
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= self.cca_dim:
            raise ValueError(
                f"model_config.{self.NAME}.cca_top_k must be null (all) or an integer in "
                f"1..cca_dim={self.cca_dim}, got {k!r}"
            )
        return k
