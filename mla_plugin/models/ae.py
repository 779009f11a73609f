"""AE: an autoencoder that imputes the missing modalities' features (the AE baseline of the
missing-modality papers MMIN and GCNet, after Bengio et al. 2006), on the shared encoders.

* joint vector ``x = [h_1 ∥ ... ∥ h_M]`` of the encoders' features, the slots of absent
  modalities zeroed; ``(x̂, z) = AE(x)`` (:class:`~mla_plugin.core.imagination.AutoEncoder`);
* the classifier (one Linear) reads ``[available ∥ imputed]`` (the present slots of ``x``,
  the absent ones from ``x̂``; ``classifier_input: filled``) or the latent ``z``
  (``classifier_input: latent``);
* loss ``CE + lambda_recon · ||x̂ - x||²`` over the cells present in the data
  (:func:`~mla_plugin.core.imagination.masked_mse`), the targets detached
  (``detach_target``: the papers reconstruct fixed features).

Which cells the AE sees in training is ``train_conditions``: ``missing_and_full`` (default)
drops a random subset of each sample's present modalities (possibly none) before the AE, so
the reconstruction loss on the dropped cells teaches it to impute; ``missing`` always drops
at least one (MMIN's conditions); ``data`` uses the batch's own mask only (then the AE is
never asked for a cell it did not see).  Evaluation always uses the data's mask.

This module is also the skeleton of CRA, MMIN and IF-MMIN (subclasses): they replace
:meth:`build_imputer`, :meth:`impute` and :meth:`imputation_loss`.
"""

import torch
from mmf.common.registry import registry
from torch import nn

from mla_plugin.core.hooks import Step
from mla_plugin.core.imagination import (
    AutoEncoder,
    draw_missing_condition,
    fill_missing,
    joint,
    masked_mse,
    zero_filled,
)
from mla_plugin.core.losses import check_recon_scale, masked_cross_entropy
from mla_plugin.models.base import MultimodalModel

TRAIN_CONDITIONS = ("missing_and_full", "missing", "data")
CLASSIFIER_INPUTS = ("filled", "latent")


@registry.register_model("ae")
class AE(MultimodalModel):
    NAME = "ae"

    def _choice(self, key, allowed):
        value = str(self.config[key])
        if value not in allowed:
            raise ValueError(
                f"model_config.{self.NAME}.{key} must be one of {list(allowed)}, got {value!r}"
            )
        return value

    def build_head(self):
        cfg = self.config
        self.joint_dim = len(self.modalities) * self.feature_dim
        self.train_conditions = self._choice("train_conditions", TRAIN_CONDITIONS)
        self.classifier_input = self._choice("classifier_input", CLASSIFIER_INPUTS)
        self.detach_target = bool(cfg.detach_target)
        self.recon_scale = check_recon_scale(
            cfg.recon_scale, f"model_config.{self.NAME}.recon_scale"
        )
        self.build_imputer()
        self.classifier = nn.Linear(self.classifier_dim(), self.num_classes)

    # ------------------------------------------------------------ per method
    def build_imputer(self):
        cfg = self.config
        self.lambda_recon = float(cfg.lambda_recon)
        self.imputer = AutoEncoder(self.joint_dim, list(cfg.autoencoder_hidden))

    def impute(self, x, features, keep, data_present):
        """``(x̂ [B, M·s], latent [B, d], extras)`` for the zero-filled joint input ``x``."""
        imputed, latent = self.imputer(x)
        return imputed, latent, {}

    def classifier_dim(self) -> int:
        return self.joint_dim if self.classifier_input == "filled" else self.imputer.latent_dim

    def classifier_features(self, filled, latent, extras):
        return filled if self.classifier_input == "filled" else latent

    def imputation_loss(self, imp) -> dict[str, torch.Tensor]:
        """The weighted non-CE terms of the loss (AE, CRA: reconstruction of present cells)."""
        recon = masked_mse(imp["imputed"], self.target(imp), imp["data_present"], self.recon_scale)
        return {"recon": self.lambda_recon * recon}

    # ------------------------------------------------------------ shared
    def target(self, imp):
        return imp["target"].detach() if self.detach_target else imp["target"]

    def condition(self, data_present: torch.Tensor) -> torch.Tensor:
        """The cells fed to the imputer: the data's mask in evaluation; in training, as
        ``train_conditions`` says."""
        if not self.training or self.train_conditions == "data":
            return data_present
        return draw_missing_condition(
            data_present, include_full=self.train_conditions == "missing_and_full"
        )

    def forward(self, sample_list):
        features = self.encode(sample_list)
        present = self.presence(sample_list)
        target = joint(features, self.modalities)
        if present is None:
            data_present = torch.ones(
                target.shape[0], len(self.modalities), dtype=torch.bool, device=target.device
            )
        else:
            data_present = present
        keep = self.condition(data_present)
        x = zero_filled(target, keep)
        imputed, latent, extras = self.impute(x, features, keep, data_present)
        filled = fill_missing(x, imputed, keep)
        scores = self.classifier(self.classifier_features(filled, latent, extras))
        imputation = dict(
            extras,
            target=target,
            input=x,
            imputed=imputed,
            filled=filled,
            latent=latent,
            keep=keep,
            data_present=data_present,
        )
        return {
            "scores": scores,
            "modality_scores": {},  # one joint classifier: no per-modality prediction
            "features": features,
            "present": present,
            "imputation": imputation,
        }

    def training_steps(self, sample_list, iteration):
        out = self(sample_list)
        ce = masked_cross_entropy(out["scores"], sample_list.targets)
        terms = self.imputation_loss(out["imputation"])
        loss = ce + sum(terms.values())
        outputs = dict(out, loss_terms={"ce": ce, **terms})
        yield Step(loss=loss, modality=None, features=out["features"], outputs=outputs)
