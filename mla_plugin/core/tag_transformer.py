"""TATE -- Tag-Assisted Transformer Encoder (Zeng, Liu & Zhou, SIGIR 2022, "Tag-assisted
Multimodal Sentiment Analysis under Uncertain Missing Modalities"), framework-free parts.

TATE zero-fills the missing modalities, adds a *tag* that encodes which of them are
missing, runs a Transformer encoder over the modality tokens, reconstructs the missing
modalities' features from the encoder's output with a decoder (trained with MMIN-style
forward and backward imagination losses) and classifies from the encoder's output.  Here:

* tag (the paper's tag encoding): ``t = 1 - present`` ∈ {0,1}^M, embedded by
  Linear(M -> s) and added to every token (:func:`missing_tag`, :class:`TagTransformer`);
* tokens: the M encoder features z_m [B, s], zero for a missing modality, plus a learned
  modality-type embedding; a small ``torch.nn.TransformerEncoder`` over the M tokens gives
  u [B, M, s]; the decoder is Linear(s -> s) per token, ẑ = D(u);
* classifier: Linear(M·s -> C) on the flattened u;
* forward (imagination) loss: ``mean over missing cells of ||ẑ_m - z_m||² / s`` -- needs
  the true feature of a missing modality, so training hides modalities that are present
  (:func:`hide_present`, the stand-in for TATE's masking of complete training data);
* backward loss (MMIN's cycle, with the tag inverted): the imagined features of the hidden
  modalities alone are fed back, tagged as the only present ones, and the decoder must
  recover the visible modalities' features: ``mean over visible cells of ||ž_m - z_m||² / s``
  (:func:`imagination_loss` for both).

Simplifications (``docs/baselines.md``, "TATE"): no pretrained modality encoders or text
model (our encoders h_m give the tokens, and the reconstruction targets are their detached
outputs), no separate "common space projection", one shared encoder-decoder for both
directions (the tag tells them apart), and a fixed token per modality (utterance-level
features rather than sequences).
"""

import torch
from torch import nn


def missing_tag(present: torch.Tensor) -> torch.Tensor:
    """The tag: 1.0 where a modality is missing, 0.0 where present; [B, M] float."""
    return (~present.bool()).float()


def hide_present(present: torch.Tensor, prob: float, generator=None) -> torch.Tensor:
    """Training-time masking: each sample with >= 2 present modalities, with probability
    ``prob``, has one of them (chosen uniformly) hidden.  Returns the visible mask [B, M]
    (a subset of ``present`` that keeps >= 1 modality per sample that had one)."""
    present = present.bool()
    if prob <= 0:
        return present
    eligible = present.sum(dim=1) >= 2
    chosen = torch.rand(present.shape[0], generator=generator, device=present.device) < prob
    keys = torch.rand(present.shape, generator=generator, device=present.device)
    pick = keys.masked_fill(~present, -1.0).argmax(dim=1)  # a uniform present modality
    hidden = torch.zeros_like(present)
    rows = torch.nonzero(eligible & chosen).squeeze(1)
    hidden[rows, pick[rows]] = True
    return present & ~hidden


def imagination_loss(
    reconstructed: torch.Tensor, target: torch.Tensor, cells: torch.Tensor
) -> torch.Tensor:
    """Mean squared error over the selected (sample, modality) cells: ``Σ_cells
    ||ẑ - z||² / (s · #cells)``; zero (still depending on ``reconstructed``) when no cell is
    selected."""
    weights = cells.to(reconstructed.dtype)
    squared = (reconstructed - target).pow(2).mean(dim=2)  # [B, M]
    return (squared * weights).sum() / weights.sum().clamp(min=1)


class TagTransformer(nn.Module):
    """Tag embedding + modality embeddings + TransformerEncoder + decoder + classifier."""

    def __init__(
        self,
        num_modalities: int,
        dim: int,
        num_classes: int,
        *,
        layers: int,
        heads: int,
        ff_dim: int,
        dropout: float,
    ):
        super().__init__()
        if dim % heads:
            raise ValueError(f"tate_heads={heads} must divide the encoders' feature size {dim}")
        self.tag_embedding = nn.Linear(num_modalities, dim)
        self.modality_embedding = nn.Parameter(torch.zeros(num_modalities, dim))
        nn.init.normal_(self.modality_embedding, std=0.02)
        layer = nn.TransformerEncoderLayer(
            dim, heads, dim_feedforward=ff_dim, dropout=dropout, batch_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.decoder = nn.Linear(dim, dim)
        self.classifier = nn.Linear(num_modalities * dim, num_classes)

    def encode(self, tokens: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
        """tokens [B, M, s] (any values at invisible cells: they are zeroed), visible [B, M]
        -> encoder output u [B, M, s]."""
        x = tokens * visible.unsqueeze(2).to(tokens.dtype)
        x = x + self.tag_embedding(missing_tag(visible).to(tokens.dtype)).unsqueeze(1)
        return self.encoder(x + self.modality_embedding)

    def forward(self, tokens: torch.Tensor, visible: torch.Tensor) -> dict:
        u = self.encode(tokens, visible)
        return {"logits": self.classifier(u.flatten(1)), "reconstructed": self.decoder(u)}

    def backward_reconstruction(self, imagined: torch.Tensor, visible: torch.Tensor):
        """The cycle: the imagined features of the invisible modalities, tagged as the only
        present ones, decoded back into all M features."""
        return self.decoder(self.encode(imagined, ~visible.bool()))
