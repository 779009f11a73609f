"""The trainer's checks between building the datasets and the first training step
(docs/reliability.md, "Validation before training").

- :func:`check_data`: the data validation pass over every split
  (:func:`mla_plugin.data.validation.validate_splits`), with ``protocol.empty_samples``
  and ``protocol.empty_classes`` (defaults: mla_plugin/configs/protocol.yaml);
- :func:`dry_forward`: one forward pass of the built model over the first batch of each
  split, in eval mode and without gradients, so that a shape, dtype or fusion error that
  would otherwise appear only at the first evaluation stops the run before training.  It
  changes nothing: the model's mode is restored, eval mode updates no batch-norm
  statistics, and the torch / CUDA / numpy / Python random states are put back, so a run's
  numbers are those it gives without the pass.
"""

import random
from contextlib import contextmanager

import numpy as np
import torch
from mmf.common.batch_collator import BatchCollator

from mla_plugin.data.validation import validate_splits


class PreflightError(RuntimeError):
    """The model failed on real data before training (the dry forward pass)."""


def check_data(trainer) -> dict:
    """Validate ``trainer.datasets`` (built, before the loaders and the model): the
    plugin's datasets, which wrap a reader; readers whose empty samples are dropped are
    replaced in place.  Returns
    ``{"dropped_samples": {split: count}}`` when samples were dropped, else ``{}``."""
    cfg = trainer.config
    model_cfg = cfg.model_config.get(cfg.model) or {}
    if not all(hasattr(data, "reader") for data in trainer.datasets.values()):
        return {}  # MMF's own datasets (no reader): only the dry forward pass checks them
    readers = {split: data.reader for split, data in trainer.datasets.items()}
    checked, dropped = validate_splits(
        readers,
        trainer.dataset_name,
        empty_samples=cfg.protocol.empty_samples,
        empty_classes=cfg.protocol.empty_classes,
        # a model that fuses zero-filled inputs predicts a sample with no modality
        check_presence=model_cfg.get("missing_fill") != "zeros",
        log=lambda line: trainer.writer.write(line, "warning"),
    )
    for split, reader in checked.items():
        trainer.datasets[split].reader = reader
    return {"dropped_samples": dropped} if dropped else {}


@contextmanager
def _random_states_kept():
    states = (
        torch.get_rng_state(),
        torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None,
        np.random.get_state(),
        random.getstate(),
    )
    try:
        yield
    finally:
        torch.set_rng_state(states[0])
        if states[1] is not None:
            torch.cuda.set_rng_state_all(states[1])
        np.random.set_state(states[2])
        random.setstate(states[3])


def _first_batch(dataset, size: int):
    indices = list(range(min(len(dataset), size)))
    getitems = getattr(dataset, "__getitems__", None)
    items = getitems(indices) if getitems is not None else [dataset[i] for i in indices]
    return BatchCollator(dataset.dataset_name, dataset.dataset_type)(items), indices


def dry_forward(trainer) -> None:
    """One no-grad eval-mode forward pass over the first batch of every split (see the
    module docstring); a failure raises :class:`PreflightError` naming the split, its
    rows and the model's error."""
    model = trainer.model
    was_training = model.training
    model.eval()
    try:
        with _random_states_kept(), torch.no_grad():
            for split, dataset in trainer.datasets.items():
                batch, rows = _first_batch(dataset, trainer.batch_size)
                where = (
                    f"dry forward pass of {trainer.config.model} on {trainer.dataset_name}, "
                    f"{split} split, samples {rows[0]}..{rows[-1]}"
                )
                try:
                    batch = trainer._to_device(batch)
                    with trainer.amp.autocast():
                        out = model(batch)
                except Exception as exc:
                    raise PreflightError(
                        f"{where}: {type(exc).__name__}: {exc} (found before training; the "
                        "run would have failed here at its first evaluation or step)"
                    ) from exc
                scores = out.get("scores") if hasattr(out, "get") else None
                if not isinstance(scores, torch.Tensor) or scores.dim() != 2:
                    raise PreflightError(
                        f"{where}: the model must return 'scores' [batch, classes], got "
                        f"{type(scores).__name__ if not isinstance(scores, torch.Tensor) else tuple(scores.shape)}"
                    )
                if scores.shape[0] != len(rows):
                    raise PreflightError(
                        f"{where}: 'scores' has {scores.shape[0]} rows for a batch of {len(rows)}"
                    )
                if not torch.isfinite(scores.float()).all():
                    raise PreflightError(
                        f"{where}: the untrained model's scores are not finite on finite "
                        "inputs; the inputs' scale is likely too large for "
                        f"training.precision={trainer.precision} (standardise them)"
                    )
    finally:
        model.train(was_training)
