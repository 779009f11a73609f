"""Per-modality standardisation of a reader's inputs, ``(x - mean) / std`` where present.

The avdigits builder wraps its reader in :class:`Standardized` when
``dataset_config.avdigits.audio_norm`` is set (see :mod:`mla_plugin.builders.avdigits`).
Nothing here imports MMF.
"""

import torch

from .reader import BatchReader, HasClassNames, HasFeatureShapes


class Standardized:
    """A reader whose listed modalities are standardised where present.

    Only the reader interface is exposed (``modalities``, ``num_classes``,
    ``class_names``, ``feature_shapes``, items and ``get_batch``), never the wrapped
    reader's raw tensors, so no access path can bypass the normalisation."""

    def __init__(self, reader, norms):
        self.reader = reader
        self.modalities = list(reader.modalities)
        self.num_classes = reader.num_classes
        self.class_names = list(reader.class_names) if isinstance(reader, HasClassNames) else []
        self.feature_shapes = (
            dict(reader.feature_shapes) if isinstance(reader, HasFeatureShapes) else {}
        )
        self.norms = {m: (float(mean), float(std)) for m, (mean, std) in norms.items()}
        for m, (_, std) in self.norms.items():
            if m not in self.modalities:
                raise ValueError(f"avdigits: normalisation for unknown modality {m!r}")
            if std <= 0:
                raise ValueError(f"avdigits: normalisation std for {m!r} must be > 0, got {std}")
        # A reader with get_batch holds its split in memory: standardise it once, here.
        self._split = (
            self._standardise(reader.get_batch(range(len(reader))))
            if isinstance(reader, BatchReader)
            else None
        )

    def __len__(self):
        return len(self.reader)

    def _standardise(self, item):
        inputs = dict(item["inputs"])
        for m, (mean, std) in self.norms.items():
            x, present = inputs[m], item["mask"][..., self.modalities.index(m)]
            present = present.reshape(present.shape + (1,) * (x.dim() - present.dim()))
            inputs[m] = torch.where(present, (x - mean) / std, x)
        return {**item, "inputs": inputs}

    def __getitem__(self, i):
        return self._standardise(self.reader[i])

    def get_batch(self, indices):
        """Stacked items (``[B, ...]``).  From an in-memory reader they are indexed out of
        the split standardised once at construction (standardising every batch cost
        about 15 % of an avdigits run, docs/benchmarks.md)."""
        if self._split is not None:
            i = torch.as_tensor(list(indices), dtype=torch.long)
            return {
                "inputs": {m: x[i] for m, x in self._split["inputs"].items()},
                **{k: self._split[k][i] for k in ("mask", "targets", "index")},
            }
        items = [self.reader[i] for i in indices]
        batch = {k: torch.stack([it[k] for it in items]) for k in ("mask", "targets", "index")}
        batch["inputs"] = {
            m: torch.stack([it["inputs"][m] for it in items]) for m in self.modalities
        }
        return self._standardise(batch)
