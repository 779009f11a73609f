"""A training stage as a model declares it (docs/trainer.md "Stages"): framework-free, so a
model declares its stages without importing the trainer; the trainer's stage runner
(``mla_plugin/trainers/stages.py``) enters them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    """One phase of training: its ``name``, its length in ``epochs`` (the last stage may
    leave it None: until training ends) and the parameters it ``freezes`` (prefixes of the
    model's parameter names, e.g. ``"encoders.audio"``)."""

    name: str
    epochs: int | None = None
    freezes: tuple[str, ...] = ()
