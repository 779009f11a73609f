"""CRA: Cascaded Residual Autoencoder (Tran et al., CVPR 2017, "Missing Modalities
Imputation via Cascaded Residual Autoencoder"), on the shared encoders' features.

The AE model (:mod:`mla_plugin.models.ae`) with the single autoencoder replaced by a cascade
of ``cascade_blocks`` residual autoencoders
(:class:`~mla_plugin.core.imagination.ResidualCascade`): ``x̂_0 = x`` (absent slots zero),
``x̂_k = x̂_{k-1} + f_k(x̂_{k-1})``, each block adding a residual to the imputed vector.
Loss ``CE + lambda_recon · ||x̂_K - x||²`` over the cells present in the data; ``latent``
(``classifier_input``) is the blocks' latents concatenated.

Stand-in: the paper imputes raw modality inputs of complete training data with synthetic
dropping and trains the classifier afterwards; here the cascade imputes encoder features and
trains jointly with the encoders and the classifier, one optimizer step per batch, with the
dropping of ``train_conditions`` (see :mod:`mla_plugin.models.ae`).
"""

from mmf.common.registry import registry

from mla_plugin.core.imagination import ResidualCascade
from mla_plugin.models.ae import AE


@registry.register_model("cra")
class CRA(AE):
    NAME = "cra"

    def build_imputer(self):
        cfg = self.config
        self.lambda_recon = float(cfg.lambda_recon)
        self.imputer = ResidualCascade(
            self.joint_dim, list(cfg.autoencoder_hidden), int(cfg.cascade_blocks)
        )
