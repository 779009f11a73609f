"""MMIN: Missing Modality Imagination Network (Zhao, Li and Jin, ACL 2021, "Missing Modality
Imagination Network for Emotion Recognition with Uncertain Missing Modalities").

On the shared encoders' features ``x = [h_1 ∥ ... ∥ h_M]``:

* missing-condition training inputs built from each sample by dropping a non-empty set of
  its present modalities (``train_conditions: missing``, the paper's conditions; one drawn
  per sample and step, :func:`~mla_plugin.core.imagination.draw_missing_condition`);
* forward imagination: a residual cascade (CRA) maps the zero-filled input to ``x̂``, whose
  dropped slots are the imagined features; loss ``||x̂ - x||²`` over the dropped cells;
* backward imagination (cycle consistency): a second cascade maps the imagined-only vector
  (kept slots zeroed) back to ``x̃``; loss ``||x̃ - x||²`` over the kept cells;
* classifier on ``[available ∥ imagined]`` (``classifier_input: filled``) or, as the
  paper, on the forward cascade's latents concatenated (``classifier_input: latent``);
* loss ``CE + lambda_forward · L_forward + lambda_backward · L_backward``, one joint step.

Samples missing modalities in the data itself: their absent cells are imagined too (and
fed to the classifier and the backward cascade), but no loss is put on them (no target);
a sample with one present modality is not dropped further (it trains the CE and the
backward loss only).  Stand-in: the paper's targets are the features of encoders
pretrained on complete data; here the encoders train jointly and the targets are their
current features, detached (``detach_target``).
"""

from mmf.common.registry import registry

from mla_plugin.core.imagination import ResidualCascade, masked_mse, zero_filled
from mla_plugin.models.cra import CRA


@registry.register_model("mmin")
class MMIN(CRA):
    NAME = "mmin"

    def cond_dim(self) -> int:
        """Size of the vector conditioning the forward cascade (IF-MMIN's invariant)."""
        return 0

    def build_imputer(self):
        cfg = self.config
        self.lambda_forward = float(cfg.lambda_forward)
        self.lambda_backward = float(cfg.lambda_backward)
        hidden, blocks = list(cfg.autoencoder_hidden), int(cfg.cascade_blocks)
        self.imputer = ResidualCascade(self.joint_dim, hidden, blocks, cond_dim=self.cond_dim())
        # built only when used: an unused module would have no gradient under DDP
        self.backward_imputer = (
            ResidualCascade(self.joint_dim, hidden, blocks) if self.lambda_backward > 0 else None
        )

    def imputation_loss(self, imp):
        target, keep = self.target(imp), imp["keep"]
        dropped = imp["data_present"] & ~keep
        terms = {
            "forward": self.lambda_forward
            * masked_mse(imp["imputed"], target, dropped, self.recon_scale)
        }
        if self.backward_imputer is not None:
            back, _ = self.backward_imputer(zero_filled(imp["imputed"], ~keep))
            terms["backward"] = self.lambda_backward * masked_mse(
                back, target, keep, self.recon_scale
            )
        return terms
