"""DCCAE -- deep canonically correlated autoencoders (Wang et al., ICML 2015) as a
Table-2 baseline: DCCA (:mod:`mla_plugin.models.dcca`) plus one decoder g_m per view.

* loss ``CE(fused) - cca_corr_weight · corr + dccae_recon_weight · Σ_m recon_m`` with
  recon_m = (1/N) Σ_i ||x_mi - g_m(f_m(x_mi))||² over the samples that have modality m
  (:func:`mla_plugin.core.correlation.reconstruction_loss`); the paper's objective is
  -corr + λ Σ_m recon_m, the cross-entropy is our single-stage stand-in for its separate
  classifier (as for DCCA);
* g_m = Linear(``cca_dim`` -> s) -> ReLU -> Linear(s -> target size);
* ``dccae_recon_target``: ``input`` (the paper: reconstruct the modality's input x_m,
  flattened; needs inputs of one fixed size, the decoder's output) or ``features`` (the
  stand-in for image/audio/text inputs, where a pixel decoder is out of scope: reconstruct
  the encoder's output h_m, detached so the target does not move to meet the decoder);
* ``dccae_recon_scale``: ``relative`` (our default) divides recon_m by the target's mean
  square (1/N) Σ_i ||x_mi||² (detached), a scale-free error: on real data the features are
  large (and nothing in -corr pins their scale), the paper's plain ``absolute`` error then
  reached ~1e7 and diverged on avdigits; ``absolute`` is the paper's term.
"""

from mmf.common.registry import registry
from torch import nn

from mla_plugin.core.correlation import reconstruction_loss
from mla_plugin.core.losses import check_recon_scale
from mla_plugin.models.dcca import DCCA


@registry.register_model("dccae")
class DCCAE(DCCA):
    NAME = "dccae"

    def build_head(self):
        super().build_head()
        cfg = self.config
        self.recon_weight = float(cfg.dccae_recon_weight)
        self.recon_target = cfg.dccae_recon_target
        if self.recon_target not in ("input", "features"):
            raise ValueError(
                f"model_config.dccae.dccae_recon_target must be 'input' or 'features', "
                f"got {self.recon_target!r}"
            )
        self.recon_scale = check_recon_scale(
            cfg.dccae_recon_scale, "model_config.dccae.dccae_recon_scale"
        )
        self.decoders = nn.ModuleDict(
            {m: self._decoder(m, self._target_size(m)) for m in self.modalities}
        )

    def _target_size(self, m) -> int:
        if self.recon_target == "features":
            return self.feature_dim
        params = self.config.encoders[m].get("params", {}) or {}
        size = params.get("in_dim")
        if not isinstance(size, int) or isinstance(size, bool):
            raise ValueError(
                f"model_config.dccae.dccae_recon_target=input needs the input size of modality "
                f"{m!r} as an integer encoders.{m}.params.in_dim (an mlp encoder), got "
                f"{size!r}; use dccae_recon_target=features for other encoders"
            )
        return size

    def _decoder(self, m, size):
        s = self.feature_dim
        return nn.Sequential(nn.Linear(self.cca_dim, s), nn.ReLU(), nn.Linear(s, size))

    def objective(self, out, sample_list):
        terms = super().objective(out, sample_list)
        present = out["present"]
        recon = 0.0
        for j, (m, z) in enumerate(out["cca_views"].items()):
            if self.recon_target == "input":
                target = sample_list[m].flatten(1)
                if target.shape[1] != self.decoders[m][-1].out_features:
                    raise ValueError(
                        f"model dccae: modality {m!r} input has {target.shape[1]} values per "
                        f"sample (shape {list(sample_list[m].shape[1:])}), but its "
                        f"encoders.{m}.params.in_dim is {self.decoders[m][-1].out_features}"
                    )
            else:
                target = out["features"][m].detach()
            recon = recon + reconstruction_loss(
                target,
                self.decoders[m](z),
                None if present is None else present[:, j],
                self.recon_scale,
            )
        terms["recon"] = recon
        return terms

    def total_loss(self, terms):
        return super().total_loss(terms) + self.recon_weight * terms["recon"]
