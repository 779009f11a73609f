"""CPM-Net -- Cross Partial Multi-View Networks (Zhang et al., NeurIPS 2019 / TPAMI 2020) on
our encoders (:mod:`mla_plugin.core.partial_views`).

* latent ``h = Σ_{v present} A_v z_v / |present|`` from the present views' encoder
  features z_v (an encoder network: the paper instead optimises a free h_n per training
  sample and, at test, each test sample's h on the reconstruction loss -- amortised
  inference is our stand-in, so one forward pass serves training and test);
* loss ``(1/N) Σ_n Σ_v s_nv ||f_v(h_n) - z_v||² + cpm_lambda · L_c`` -- every *present* view
  reconstructed by its degradation network f_v (targets detached, so the encoders cannot
  shrink their features to cheat the reconstruction), and the structured classification
  loss L_c with the batch standing in for each class's training latents;
* prediction: the nearest class by ``E_{h~T(y)} h^T h_n = μ_y^T h_n``, μ_y the class means
  of the last training epoch's latents (:class:`~mla_plugin.core.partial_views.PrototypeHook`,
  kept as a buffer so checkpoints carry them).

No per-modality predictions (``modality_scores`` is empty; their accuracies are null).
``missing_fill: zeros`` treats every view as present (the zero-filled inputs included).
"""

import torch
from mmf.common.registry import registry

from mla_plugin.core.hooks import Step
from mla_plugin.core.losses import check_recon_scale
from mla_plugin.core.partial_views import (
    PartialViewHead,
    PrototypeHook,
    reconstruction_loss,
    structured_loss,
)
from mla_plugin.models.base import MultimodalModel


@registry.register_model("cpm_net")
class CPMNet(MultimodalModel):
    NAME = "cpm_net"

    def build_head(self):
        cfg = self.config
        self._lambda = float(cfg.cpm_lambda)
        self.recon_scale = check_recon_scale(
            cfg.cpm_recon_scale, "model_config.cpm_net.cpm_recon_scale"
        )
        latent_dim = int(cfg.cpm_latent_dim)
        if latent_dim < 1:
            raise ValueError(f"model_config.cpm_net.cpm_latent_dim must be >= 1, got {latent_dim}")
        self.head = PartialViewHead(self.modalities, self.feature_dim, latent_dim, self.num_classes)

    def _present(self, sample_list, features) -> torch.Tensor:
        present = self.presence(sample_list)
        if present is None:
            ref = features[self.modalities[0]]
            return torch.ones(
                ref.shape[0], len(self.modalities), dtype=torch.bool, device=ref.device
            )
        return present

    def forward(self, sample_list):
        features = self.encode(sample_list)
        present = self.presence(sample_list)
        out = self.head(features, self._present(sample_list, features))
        return {
            "scores": out["scores"],
            "modality_scores": {},
            "features": features,
            "present": present,
            "latent": out["latent"],
            "reconstructions": out["reconstructions"],
        }

    def training_steps(self, sample_list, iteration):
        out = self(sample_list)
        features = out["features"]
        targets = torch.stack([features[m] for m in self.modalities], dim=1).detach()
        rec = reconstruction_loss(
            out["reconstructions"], targets, self._present(sample_list, features), self.recon_scale
        )
        cls = structured_loss(out["latent"], sample_list.targets, self.num_classes)
        loss = rec + self._lambda * cls
        outputs = dict(out, cpm_reconstruction=rec.detach(), cpm_classification=cls.detach())
        yield Step(loss=loss, modality=None, features=features, outputs=outputs)

    def training_hooks(self):
        return [PrototypeHook(self.head)]
