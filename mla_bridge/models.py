"""Module fixes that let MMF's own models build offline on this stack.

* The rc10 wheel ships no model configs: :func:`use_bridge_model_configs` points the
  ``config_path`` of each model class we wrote one for at ``mla_bridge/configs/models/``.
* rc10's ``TransformerEncoder`` always calls ``AutoModel.from_pretrained`` (a download
  unless ``bert_model_name`` is a local folder): :func:`bert_random_init` adds
  ``random_init: true``, which builds the BERT from the config's sizes with random
  weights instead.
"""

import os

from mla_bridge import BRIDGE_DIR

MODEL_CONFIG_DIR = os.path.join(BRIDGE_DIR, "configs", "models")

# MMF module -> {class name: registered model name} for the configs in MODEL_CONFIG_DIR
MODEL_CLASSES = {
    "mmf.models.fusions": {
        "ConcatBERT": "concat_bert",
        "ConcatBoW": "concat_bow",
        "LateFusion": "late_fusion",
    },
    "mmf.models.unimodal": {"UnimodalText": "unimodal_text", "UnimodalModal": "unimodal_image"},
    "mmf.models.mmbt": {"MMBT": "mmbt"},
}


def model_config_path(name: str) -> str:
    return os.path.join(MODEL_CONFIG_DIR, f"{name}.yaml")


def use_bridge_model_configs(module) -> None:
    """Each listed class of ``module`` reads its defaults from the bridge's YAML."""
    for cls_name, name in MODEL_CLASSES[module.__name__].items():
        path = model_config_path(name)
        getattr(module, cls_name).config_path = classmethod(lambda cls, p=path: p)


def bert_random_init(module) -> None:
    """``text_encoder.params.random_init: true``: a randomly initialised BERT of the
    configured sizes (``transformers.BertConfig(**params)``), with no hub look-up."""
    encoder_cls = module.TransformerEncoder
    original_init = encoder_cls.__init__

    def __init__(self, config, *args, **kwargs):
        if not config.get("random_init", False):
            original_init(self, config, *args, **kwargs)
            return
        from omegaconf import OmegaConf
        from torch import nn
        from transformers import BertConfig, BertModel

        nn.Module.__init__(self)
        params = OmegaConf.to_container(config, resolve=True)
        for key in ("random_init", "bert_model_name"):
            params.pop(key, None)
        self.module = BertModel(BertConfig(**params))
        self.embeddings = self.module.embeddings
        self.config = self.module.config

    encoder_cls.__init__ = __init__
