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
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from mmf.common.batch_collator import BatchCollator

from mla_plugin.data.validation import validate_splits


class PreflightError(RuntimeError):
    """The model failed on real data before training (the dry forward pass)."""


def check_data(config, datasets: dict[str, Any], dataset_name: str, log: Callable) -> dict:
    """Validate ``datasets`` (split -> built dataset, before the loaders and the model) as
    ``config``'s protocol section says: the plugin's datasets, which wrap a reader;
    readers whose empty samples are dropped are replaced in place; ``log(line)`` reports
    warnings.  Returns ``{"dropped_samples": {split: count}}`` when samples were dropped,
    else ``{}``."""
    model_cfg = config.model_config.get(config.model) or {}
    if not all(hasattr(data, "reader") for data in datasets.values()):
        return {}  # MMF's own datasets (no reader): only the dry forward pass checks them
    readers = {split: data.reader for split, data in datasets.items()}
    checked, dropped = validate_splits(
        readers,
        dataset_name,
        empty_samples=config.protocol.empty_samples,
        empty_classes=config.protocol.empty_classes,
        # a model that fuses zero-filled inputs predicts a sample with no modality
        check_presence=model_cfg.get("missing_fill") != "zeros",
        log=log,
    )
    for split, reader in checked.items():
        datasets[split].reader = reader
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


def dry_forward(
    model: torch.nn.Module,
    datasets: dict[str, Any],
    *,
    batch_size: int,
    to_device: Callable,
    amp: Any,
    run: str,
) -> None:
    """One no-grad eval-mode forward pass over the first ``batch_size`` samples of every
    split of ``datasets`` (see the module docstring), each batch moved by ``to_device``,
    under ``amp.autocast()`` (a :class:`~mla_plugin.core.precision.MixedPrecision`); a
    failure raises :class:`PreflightError` naming ``run`` (``<model> on <dataset>``), the
    split, its rows and the model's error."""
    was_training = model.training
    model.eval()
    try:
        with _random_states_kept(), torch.no_grad():
            for split, dataset in datasets.items():
                batch, rows = _first_batch(dataset, batch_size)
                where = f"dry forward pass of {run}, {split} split, samples {rows[0]}..{rows[-1]}"
                try:
                    batch = to_device(batch)
                    with amp.autocast():
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
                        f"training.precision={amp.precision} (standardise them)"
                    )
    finally:
        model.train(was_training)
