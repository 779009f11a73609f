"""Any MMF model (a ``BaseModel`` whose ``forward`` returns ``{"scores": ...}``) as a
method of the plugin's trainer.

The trainer drives models through a small interface (``modalities``, ``presence``,
``training_steps``, ``training_hooks``, ``zero_grad_between_steps``, and ``forward``
giving ``scores`` and ``modality_scores``); the plugin's own models have it from
:class:`~mla_plugin.models.base.MultimodalModel`.  :class:`MMFModelAdapter` gives it to a
model of MMF's registry (``concat_bow``, ``mmbt``, ...), unchanged inside it:

* one joint step per batch on the model's own losses, as MMF's ``BaseModel.__call__``
  computes them from the model config's ``losses:`` list (the bridge's configs list
  ``cross_entropy``); with no ``losses`` configured, cross-entropy on ``scores``;
* ``modality_scores``: MMF's models return a fused prediction only, so ``metrics.json``
  has the fused accuracy and ``null`` for each modality, except where a model computes
  per-modality logits inside (MMF's ``late_fusion`` averages a text and an image
  classifier's): :data:`MODALITY_HEADS` names those submodules, whose outputs are read
  with forward hooks and reported for the dataset's ``text`` and ``image`` modalities;
* ``modalities`` are the dataset's (its ``modalities`` attribute; none if it has
  none), for the presence mask and the majority-class rates;
* the ``protocol`` section and the trainer's own ``training`` keys:
  :func:`supply_plugin_defaults` merges ``mla_plugin/configs/protocol.yaml`` and
  ``trainer.yaml`` under the model config of a model whose YAML lacks them (the plugin's
  own model YAMLs include both), as MMF merges a model's defaults.
"""

from collections.abc import Iterator

import torch
from mmf.models.base_model import BaseModel
from mmf.utils import configuration
from omegaconf import OmegaConf
from torch import nn

from mla_plugin.config_validation import PROTOCOL_YAML
from mla_plugin.core.hooks import Step, TrainingHook
from mla_plugin.core.losses import masked_cross_entropy
from mla_plugin.mmf_config import TRAINER_DEFAULTS
from mla_plugin.models.base import MultimodalModel

# MMF model -> {modality: the submodule whose output is that modality's logits}
MODALITY_HEADS = {"late_fusion": {"text": "text_classifier", "image": "modal_classifier"}}


PLUGIN_SECTIONS = ((PROTOCOL_YAML, "protocol"), (TRAINER_DEFAULTS, "training.callbacks"))
"""The plugin's own config files and the key that shows a model config already has each
(the plugin's model YAMLs include both files)."""


def supply_plugin_defaults() -> None:
    """Have MMF's ``Configuration`` give every run the plugin's sections: ``protocol``
    (protocol.yaml) and the trainer's own ``training`` keys (trainer.yaml), merged first,
    under the model's own config, when the model's YAML lacks them (MMF's models); so
    ``protocol.selection=last`` works on the command line for any model.  Idempotent."""
    cls = configuration.Configuration
    build_model_config = cls._build_model_config
    if getattr(build_model_config, "supplies_plugin_defaults", False):
        return

    def _build_model_config(self, config):
        model_config = build_model_config(self, config)
        for path, key in PLUGIN_SECTIONS:
            if OmegaConf.select(model_config, key) is None:
                model_config = OmegaConf.merge(configuration.load_yaml(path), model_config)
        return model_config

    _build_model_config.supplies_plugin_defaults = True
    cls._build_model_config = _build_model_config


def needs_adapter(model: nn.Module) -> bool:
    """Whether ``model`` is a foreign MMF model (not one of the plugin's)."""
    return isinstance(model, BaseModel) and not isinstance(model, MultimodalModel)


class MMFModelAdapter(nn.Module):
    """Wraps a built MMF model for :class:`~mla_plugin.trainers.multimodal.MultimodalTrainer`."""

    ONE_STEP_PER_BATCH = True

    def __init__(self, model: BaseModel, name: str, modalities=()):
        super().__init__()
        self.model = model
        self.name = name
        self.modalities: list[str] = list(modalities)
        self.own_losses = len(model.config.get("losses", None) or []) > 0
        self._captured: dict[str, torch.Tensor] = {}
        for modality, head in MODALITY_HEADS.get(name, {}).items():
            if modality in self.modalities:
                getattr(model, head).register_forward_hook(self._capture(modality))

    def _capture(self, modality):
        def hook(module, inputs, output):
            self._captured[modality] = output

        return hook

    def get_optimizer_parameters(self, config):
        """The wrapped model's parameter groups (MMF's ``build_optimizer`` asks for them:
        BERT models keep LayerNorm and biases out of weight decay)."""
        if hasattr(self.model, "get_optimizer_parameters"):
            return self.model.get_optimizer_parameters(config)
        return self.model.parameters()

    def presence(self, sample_list) -> torch.Tensor | None:
        mask = sample_list.get("mask") if hasattr(sample_list, "get") else None
        if mask is None or bool(mask.all()):
            return None
        return mask.bool()

    def forward(self, sample_list):
        self._captured = {}
        out = self.model(sample_list)  # BaseModel.__call__: adds out["losses"]
        if "scores" not in out:
            raise ValueError(
                f"model {self.name}: its forward returned {sorted(out)}, no 'scores'; the "
                "plugin's trainer runs MMF models that return {'scores': logits [B, C]}"
            )
        return {
            "scores": out["scores"],
            "modality_scores": {**self._captured, **out.get("modality_scores", {})},
            "losses": out.get("losses", {}),
            "features": {},
        }

    def training_steps(self, sample_list, iteration: int) -> Iterator[Step]:
        out = self(sample_list)
        if self.own_losses:
            loss = sum(out["losses"].values())
        else:
            loss = masked_cross_entropy(out["scores"], sample_list.targets)
        yield Step(loss=loss, modality=None, features={}, outputs=out)

    def training_hooks(self) -> list[TrainingHook]:
        return []

    def zero_grad_between_steps(self) -> bool:
        return False
