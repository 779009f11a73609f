"""QMF -- Quality-aware Multimodal Fusion (Zhang et al., ICML 2023) on late-fusion heads.

* fused logits ``Σ_m w_m f_m`` with w_m = logsumexp(f_m) / T (``qmf_temperature``, 10),
  detached (``qmf_detach``), by the MMF fusion ``qmf_energy`` (``models/fusions.py``);
  per-modality accuracy uses each modality's own head;
* loss ``[CE(fused)] + Σ_m CE(f_m) + qmf_rank_weight · Σ_m rank_m``
  (:func:`mla_plugin.core.qmf.qmf_loss`; ``qmf_fused_ce: false`` is the MLA code's M3AE
  variant, ``qmf_rank_weight: 0.1`` its ResNet one; ``qmf_rank_margin_sign`` the sign of
  the ranking margin, ``official`` as in QMF's and MLA's code, ``plus`` the other reading);
* the ranking regulariser compares each sample's confidence with its *accumulated*
  unimodal loss, kept in a :class:`~mla_plugin.core.qmf.LossHistory` keyed by the dataset
  sample index (``sample_list.index``) and updated after every optimizer step by
  :class:`~mla_plugin.core.qmf.QMFHistoryHook` (indices and losses all-gathered under
  torchrun, so every rank holds the same history; it is saved with the hook state).

The history has one entry per training sample: its size is ``num_train_samples`` in the
model config, which the trainer fills in with the train split's length before building
the model.  Missing modalities are left out: of the fused sum, of their CE and ranking
pairs, and of the history (an absent modality's entry is not updated).
"""

from mmf.common.registry import registry

from mla_plugin.core.fusion_heads import QMFHead
from mla_plugin.core.hooks import Step
from mla_plugin.core.qmf import RANK_MARGIN_SIGNS, LossHistory, QMFHistoryHook, qmf_loss
from mla_plugin.models.base import MultimodalModel
from mla_plugin.models.fusions import build_fusion


@registry.register_model("qmf")
class QMF(MultimodalModel):
    NAME = "qmf"

    def build_head(self):
        cfg = self.config
        # read once: the loss reads them on every batch (an OmegaConf lookup costs ~15 us)
        self.temperature = float(cfg.qmf_temperature)
        self._fused_ce = bool(cfg.qmf_fused_ce)
        self._rank_weight = float(cfg.qmf_rank_weight)
        self._rank_margin_sign = cfg.qmf_rank_margin_sign
        if self._rank_margin_sign not in RANK_MARGIN_SIGNS:
            raise ValueError(
                f"model_config.qmf.qmf_rank_margin_sign: {self._rank_margin_sign!r} is not "
                f"one of {list(RANK_MARGIN_SIGNS)}"
            )
        self.head = QMFHead(
            self.modalities,
            self.feature_dim,
            self.num_classes,
            temperature=self.temperature,
            detach=bool(cfg.qmf_detach),
            # the fusion rule, MMF's registered qmf_energy (mla_plugin/models/fusions.py)
            fuse=build_fusion("qmf_energy", temperature=self.temperature, detach=cfg.qmf_detach),
        )
        self.history = None  # built with the hooks, once the train split's size is known

    def training_hooks(self):
        size = self.config.num_train_samples
        if not size:
            raise ValueError(
                "model qmf: the loss history needs model_config.qmf.num_train_samples "
                "(the train split's size; the multimodal trainer sets it)"
            )
        self.history = LossHistory(self.modalities, int(size))
        return [QMFHistoryHook(self.history)]

    def training_steps(self, sample_list, iteration):
        if self.history is None:
            raise RuntimeError(
                "model qmf: call training_hooks() before training (it builds the history)"
            )
        out = self(sample_list)
        loss, sample_losses = qmf_loss(
            out["modality_scores"],
            out["scores"],
            sample_list.targets,
            sample_list.index,
            self.history,
            present=out["present"],
            fused_ce=self._fused_ce,
            rank_weight=self._rank_weight,
            temperature=self.temperature,
            rank_margin_sign=self._rank_margin_sign,
        )
        outputs = dict(out, qmf_sample_losses=sample_losses)
        yield Step(loss=loss, modality=None, features=out["features"], outputs=outputs)
