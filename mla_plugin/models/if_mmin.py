"""IF-MMIN (Zuo, Liu, Zhao, Gao and Li, ICASSP 2023, "Exploiting Modality-Invariant Feature
for Robust Multimodal Emotion Recognition with Missing Modalities").

MMIN (:mod:`mla_plugin.models.mmin`) plus a modality-invariant feature:

* one shared invariant encoder (Linear + ``invariant_activation``, ``invariant_dim``) applied to every
  modality's encoder features, ``u_m = E_inv(h_m)``; the modality-specific features are the
  shared encoders' ``h_m`` themselves;
* ``L_cmd``: the mean central moment discrepancy (``cmd_moments`` orders) between every
  pair of modalities' ``u`` over the samples holding both
  (:func:`~mla_plugin.core.imagination.pairwise_cmd`);
* the invariant feature of the input, ``H' = mean of u_m over the kept modalities``, guides
  the imagination: it is fed to every block of the forward cascade (IF-IM) and appended to
  the classifier's input;
* ``L_inv = ||H' - H||²`` with ``H`` the same mean over every modality present in the data
  (detached with ``detach_target``), on the samples the condition dropped something from;
* loss ``CE + lambda_forward · L_forward + lambda_cmd · L_cmd + lambda_invariant · L_inv``
  (+ MMIN's backward term when ``lambda_backward > 0``; IF-MMIN has none, default 0).

Stand-ins: the paper first trains a full-modality model (specific + invariant encoders
with L_cmd) and uses its invariant feature as H; here everything trains jointly in one stage
and H comes from the current invariant encoder.  The paper concatenates the modalities'
invariant features into H; a mean is used here so that H' has one size whatever is missing
(a missing modality's u would otherwise be the encoding of a zero input).

``invariant_activation``: ``sigmoid`` (the default) keeps ``u`` in [0, 1], the interval of
length 1 that CMD without its 1/|b-a|^k factors assumes (MISA's shared projection, which
IF-MMIN follows, ends in a sigmoid); ``relu`` leaves ``u`` unbounded, and its 5th-order
moments overflowed on avdigits (NaN loss within 20 updates at missing rate 0.3).
"""

import torch
from mmf.common.registry import registry
from torch import nn

from mla_plugin.core.imagination import masked_mean, masked_mse, pairwise_cmd
from mla_plugin.models.mmin import MMIN

ACTIVATIONS = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU}


@registry.register_model("if_mmin")
class IFMMIN(MMIN):
    NAME = "if_mmin"

    def cond_dim(self) -> int:
        return self.invariant_dim

    def build_imputer(self):
        cfg = self.config
        self.invariant_dim = int(cfg.invariant_dim)
        self.lambda_cmd = float(cfg.lambda_cmd)
        self.lambda_invariant = float(cfg.lambda_invariant)
        self.cmd_moments = int(cfg.cmd_moments)
        if cfg.invariant_activation not in ACTIVATIONS:
            raise ValueError(
                f"model_config.if_mmin.invariant_activation: {cfg.invariant_activation!r} "
                f"is not one of {', '.join(ACTIVATIONS)}"
            )
        self.invariant_encoder = nn.Sequential(
            nn.Linear(self.feature_dim, self.invariant_dim),
            ACTIVATIONS[cfg.invariant_activation](),
        )
        super().build_imputer()

    def impute(self, x, features, keep, data_present):
        invariant = [self.invariant_encoder(features[m]) for m in self.modalities]
        guide = masked_mean(invariant, keep)
        imputed, latent = self.imputer(x, guide)
        extras = {
            "invariant": invariant,
            "guide": guide,
            "full_invariant": masked_mean(invariant, data_present),
        }
        return imputed, latent, extras

    def classifier_dim(self) -> int:
        return super().classifier_dim() + self.invariant_dim

    def classifier_features(self, filled, latent, extras):
        base = super().classifier_features(filled, latent, extras)
        return torch.cat([base, extras["guide"]], dim=1)

    def imputation_loss(self, imp):
        terms = super().imputation_loss(imp)
        cmd = pairwise_cmd(imp["invariant"], imp["data_present"], self.cmd_moments)
        terms["cmd"] = self.lambda_cmd * cmd
        full = imp["full_invariant"].detach() if self.detach_target else imp["full_invariant"]
        dropped = (imp["data_present"] & ~imp["keep"]).any(1, keepdim=True)
        # always the plain MSE: its target is a learned latent that CMD may shrink towards
        # zero, where a relative error explodes (measured: loss ~3e11, then NaN, on avdigits)
        terms["invariant"] = self.lambda_invariant * masked_mse(imp["guide"], full, dropped)
        return terms
