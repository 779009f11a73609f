"""The names MMF rc10 imports from transformers 2.x's flat ``modeling_bert`` module,
looked up in their current homes."""

from torch.nn import LayerNorm as BertLayerNorm  # noqa: F401  (removed in transformers 4)
from transformers.activations import ACT2FN  # noqa: F401
from transformers.models.bert import modeling_bert as _modeling_bert
from transformers.models.bert.configuration_bert import BertConfig  # noqa: F401


def __getattr__(name):
    return getattr(_modeling_bert, name)
