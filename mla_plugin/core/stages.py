"""A phase of training, as a model declares it in ``stages()`` (docs/trainer.md "Stages"):
here, below the models, so a model can name its stages; the trainer's stage runner is in
``mla_plugin/trainers/stages.py``."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    """One phase of training: its ``name``, its length in ``epochs`` (None: until training
    ends; only the last stage) and the parameters it ``freezes`` (name prefixes)."""

    name: str
    epochs: int | None = None
    freezes: tuple[str, ...] = ()
