"""Encoders h_m, one per modality, built from a small config mapping (``type`` + params).

All return a feature vector of size ``out_dim`` (the paper's s) per sample.
"""

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn


class MLPEncoder(nn.Module):
    """``layers`` fully connected layers with ReLU; the paper's missing-modality backbone
    is 3 layers of width 128 (appendix A.3.2).  Inputs of any shape are flattened."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int = 128,
        hidden: int = 128,
        layers: int = 3,
        dropout: float = 0.0,
    ):
        super().__init__()
        dims = [in_dim] + [hidden] * (layers - 1) + [out_dim]
        blocks = []
        for i in range(layers):
            blocks += [nn.Linear(dims[i], dims[i + 1]), nn.ReLU()]
            if dropout and i < layers - 1:
                blocks.append(nn.Dropout(dropout))
        self.net = nn.Sequential(*blocks)
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))


class ConvEncoder(nn.Module):
    """A small 2-D CNN for 1-channel inputs (fbank frames × mel bins, or small images),
    global-average pooled to ``out_dim``; sized to train in seconds on a CPU.  With
    ``frames=True`` the input is video [B, T, C, H, W]: the network runs per frame and the
    features are averaged over time (as :class:`ResNet18Encoder` does)."""

    def __init__(
        self, in_channels: int = 1, out_dim: int = 64, width: int = 16, frames: bool = False
    ):
        super().__init__()
        self.frames = frames
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.MaxPool2d(2, ceil_mode=True),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.MaxPool2d(2, ceil_mode=True),
            nn.Conv2d(2 * width, out_dim, 3, padding=1),
            nn.BatchNorm2d(out_dim),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.frames:
            b, t = x.shape[:2]
            return self.net(x.flatten(0, 1)).flatten(1).view(b, t, -1).mean(1)
        if x.dim() == 3:
            x = x.unsqueeze(1)
        return self.net(x).flatten(1)


def _load_resnet18(net: nn.Module, path: str, what: str) -> None:
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    state = {k.removeprefix("module."): v for k, v in state.items()}
    # the classifier is dropped (this net's fc has another size)
    missing, _ = net.load_state_dict(
        {k: v for k, v in state.items() if not k.startswith("fc.")}, strict=False
    )
    if [k for k in missing if not k.startswith("fc.")]:
        raise ValueError(
            f"{what}: {path} lacks {len(missing)} ResNet-18 weights, e.g. {missing[:3]}"
        )


def _local_weights(path, what):
    """``path`` (expanded) when given; a clear error when it is given but absent."""
    if path in (None, "", "null"):
        return None
    import os

    path = os.path.expanduser(os.path.expandvars(str(path)))
    if not os.path.exists(path):
        raise ValueError(
            f"{what}: pretrained weights not found at {path} (set the path to a "
            f"local copy, or null for random initialisation)"
        )
    return path


class ResNet18Encoder(nn.Module):
    """torchvision's ResNet-18 trained from scratch, as in the paper's audio-video setting.

    ``in_channels=1`` for fbank input [B, 1, T, F]; with ``frames=True`` the input is
    [B, T, 3, H, W]: the network runs per frame and the feature maps are averaged over
    time and space (the authors' 3-D average pooling) to 512, then projected to
    ``out_dim`` when it differs.  ``weights``: a local file holding torchvision's
    ``resnet18`` state dict (3 input channels; nothing is downloaded), else random init.
    """

    NAME = "resnet18"

    def __init__(
        self, in_channels: int = 1, frames: bool = False, out_dim: int = 512, weights: str = None
    ):
        super().__init__()
        from torchvision.models import resnet18

        net = resnet18(weights=None, num_classes=1)
        path = _local_weights(weights, type(self).NAME)
        if path is not None:
            if in_channels != 3:
                raise ValueError(
                    f"{self.NAME}: pretrained weights need in_channels 3, got {in_channels}"
                )
            _load_resnet18(net, path, self.NAME)
        elif in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.body = nn.Sequential(*list(net.children())[:-2])
        self.frames = frames
        self.proj = nn.Identity() if out_dim == 512 else nn.Linear(512, out_dim)
        self.out_dim = out_dim
        if path is None:
            for m in self.body.modules():  # the authors' weight_init
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.frames:
            b, t = x.shape[:2]
            maps = self.body(x.flatten(0, 1))
            feats = maps.view(b, t, *maps.shape[1:]).mean(dim=(1, 3, 4))
        else:
            if x.dim() == 3:
                x = x.unsqueeze(1)
            feats = self.body(x).mean(dim=(2, 3))
        return self.proj(feats)


class FrozenFeatures(nn.Module):
    """Pre-extracted features passed through unchanged (head-only training, e.g. the
    paper's frozen-CLIP experiment)."""

    def __init__(self, in_dim: int, out_dim: int = None):
        super().__init__()
        if out_dim not in (None, in_dim):
            raise ValueError(f"identity encoder: out_dim {out_dim} must equal in_dim {in_dim}")
        self.out_dim = in_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


class ImageResNet18Encoder(ResNet18Encoder):
    """:class:`ResNet18Encoder` on RGB images ``[B, 3, H, W]``, optionally from a local
    torchvision ``resnet18`` state dict (e.g. ``resnet18-f37072fd.pth``)."""

    NAME = "image_resnet18"

    def __init__(self, out_dim: int = 512, weights: str = None):
        super().__init__(in_channels=3, out_dim=out_dim, weights=weights)


class BertTextEncoder(nn.Module):
    """A BERT-configured transformer (``transformers.BertModel``) on token ids ``[B, L]``
    (pad id 0; the attention mask is ``ids != pad_id``), mean-pooled over the non-pad
    tokens (``pooling: mean``; ``cls`` takes the first token) and projected to ``out_dim``.

    ``pretrained``: null = random initialisation from the configuration below (BERT-base
    by default); a local folder (``save_pretrained`` layout) loads its weights and
    configuration instead.  Nothing is downloaded.
    """

    def __init__(
        self,
        out_dim: int = 512,
        pretrained: str = None,
        vocab_size: int = 30522,
        hidden_size: int = 768,
        num_layers: int = 12,
        num_heads: int = 12,
        intermediate_size: int = 3072,
        max_position: int = 512,
        dropout: float = 0.1,
        pooling: str = "mean",
        pad_id: int = 0,
    ):
        super().__init__()
        from transformers import BertConfig, BertModel

        if pooling not in ("mean", "cls"):
            raise ValueError(f"bert: pooling must be 'mean' or 'cls', got {pooling!r}")
        path = _local_weights(pretrained, "bert")
        if path is not None:
            self.bert = BertModel.from_pretrained(
                path, local_files_only=True, add_pooling_layer=False
            )
        else:
            cfg = BertConfig(
                vocab_size=vocab_size,
                hidden_size=hidden_size,
                num_hidden_layers=num_layers,
                num_attention_heads=num_heads,
                intermediate_size=intermediate_size,
                max_position_embeddings=max_position,
                hidden_dropout_prob=dropout,
                attention_probs_dropout_prob=dropout,
                pad_token_id=pad_id,
            )
            self.bert = BertModel(cfg, add_pooling_layer=False)
        hidden = self.bert.config.hidden_size
        self.pooling, self.pad_id = pooling, pad_id
        self.proj = nn.Identity() if out_dim == hidden else nn.Linear(hidden, out_dim)
        self.out_dim = out_dim

    def forward(
        self, ids: torch.Tensor, mask: torch.Tensor = None, segment_ids: torch.Tensor = None
    ) -> torch.Tensor:
        """``mask`` (1 = token) and ``segment_ids``: as MMF's ``bert_tokenizer`` gives
        them (``input_mask``, ``segment_ids``); without a mask, the non-pad tokens."""
        ids = ids.long()
        attn = (ids != self.pad_id).long() if mask is None else mask.long()
        types = None if segment_ids is None else segment_ids.long()
        out = self.bert(input_ids=ids, attention_mask=attn, token_type_ids=types)
        out = out.last_hidden_state
        if self.pooling == "cls":
            pooled = out[:, 0]
        else:
            w = attn.unsqueeze(-1).to(out.dtype)
            pooled = (out * w).sum(1) / w.sum(1).clamp(min=1.0)
        return self.proj(pooled)


def _to_channels_last(module, args):
    x = args[0]
    if x.dim() == 4:
        return (x.contiguous(memory_format=torch.channels_last),) + tuple(args[1:])
    return None


def use_channels_last(model: nn.Module) -> int:
    """Put every conv stack of ``model`` (``ConvEncoder.net``, the ResNet-18 encoders'
    ``body``) in channels_last memory format: its weights, and its 4-D input on each
    call (a forward pre-hook; the layers keep the format from there).  Returns the
    number of stacks converted (0: the model has no conv encoder)."""
    stacks = [
        m.net if isinstance(m, ConvEncoder) else m.body
        for m in model.modules()
        if isinstance(m, (ConvEncoder, ResNet18Encoder))
    ]
    for stack in stacks:
        stack.to(memory_format=torch.channels_last)
        stack.register_forward_pre_hook(_to_channels_last)
    return len(stacks)


ENCODERS = {
    "mlp": MLPEncoder,
    "conv": ConvEncoder,
    "resnet18": ResNet18Encoder,
    "image_resnet18": ImageResNet18Encoder,
    "bert": BertTextEncoder,
    "identity": FrozenFeatures,
}


def build_encoder(spec: Mapping[str, Any]) -> nn.Module:
    """Build an encoder from ``{"type": name, "params": {...}, "fields": [...]}``.

    ``fields`` (optional): the sample fields the encoder is called with, in order, e.g.
    ``[input_ids, input_mask, segment_ids]`` for MMF's ``bert_tokenizer`` output or
    ``[image]`` for its image processors; absent or null, the field named like the
    modality.  The list is kept as the encoder's ``input_fields``."""
    unknown = set(spec) - {"type", "params", "fields"}
    if unknown:
        raise ValueError(
            f"encoder spec: unknown keys {sorted(unknown)}; valid: fields, params, type"
        )
    kind = spec.get("type")
    if kind not in ENCODERS:
        raise ValueError(f"unknown encoder type {kind!r}; valid: {sorted(ENCODERS)}")
    params: dict[str, Any] = dict(spec.get("params", {}) or {})
    fields = spec.get("fields")
    if fields is not None and (
        isinstance(fields, str) or not all(isinstance(f, str) for f in fields) or not fields
    ):
        raise ValueError(
            f"encoder {kind!r}: fields must be a non-empty list of names, got {fields!r}"
        )
    try:
        encoder = ENCODERS[kind](**params)
    except TypeError as e:
        raise ValueError(f"encoder {kind!r}: bad params {sorted(params)}: {e}") from e
    encoder.input_fields = list(fields) if fields is not None else None
    return encoder


def encoder_inputs(encoder: nn.Module, sample_list, modality: str) -> list:
    """The sample fields ``encoder`` is called with (see :func:`build_encoder`)."""
    fields = getattr(encoder, "input_fields", None) or [modality]
    missing = [f for f in fields if f not in sample_list]
    if missing:
        raise KeyError(
            f"encoder of modality {modality!r} reads sample fields {fields}, but the batch "
            f"has no {missing}; it has {sorted(sample_list.keys())} (set the encoder's "
            f"fields in multimodal.encoders.{modality}.fields)"
        )
    return [sample_list[f] for f in fields]
