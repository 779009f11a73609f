"""Missing-modality protocol: per-sample presence masks (docs/method-notes.md §6).

Two schemes:

- ``cpm_atleast1`` (the authors' code, after CPM-Net's ``random_mask``): every sample keeps
  at least one modality and the overall fraction of missing (sample, modality) cells is close
  to ``rate``. Re-implemented without CPM-Net's redraw loop: each sample first gets one kept
  modality chosen uniformly, then exactly ``round(N*M*(1-rate)) - N`` of the remaining cells
  are kept, chosen uniformly without replacement. The realised missing fraction is thus
  within ``0.5 / (N*M)`` of ``rate`` (<= 0.005 once N*M >= 100). When ``rate >= (M-1)/M``
  each sample keeps exactly one uniformly chosen modality, so the realised rate is
  ``(M-1)/M`` (e.g. 0.667 for eta = 0.7 and M = 3), as in the code.
- ``bernoulli`` (the paper's text): each cell is missing independently with probability
  ``rate``; a sample may then lose *all* its modalities.

Masks are drawn once (fixed across epochs) with a :class:`numpy.random.Generator`; use
:func:`split_seed` to give train/val/test independent draws.
"""

from __future__ import annotations

import zlib

import numpy as np

MASK_SCHEMES = ("cpm_atleast1", "bernoulli")


def split_seed(base_seed: int, split_name: str) -> int:
    """A fixed seed for ``split_name`` derived from ``base_seed``.

    Different split names (``"train"``, ``"val"``, ``"test"``, ...) give different seeds, so
    their masks are independent draws; the result is stable across processes and platforms
    (no use of Python's salted ``hash``).
    """
    tag = zlib.crc32(str(split_name).encode("utf-8"))
    seq = np.random.SeedSequence([int(base_seed) & 0xFFFFFFFF, tag])
    return int(seq.generate_state(1, dtype=np.uint32)[0])


def carve_mask(rng: np.random.Generator, n: int, fraction: float) -> np.ndarray:
    """Bool mask ``[n]`` with a random ``round(fraction * n)`` positions True (the val carve):
    one ``rng.permutation(n)`` draw picks them."""
    perm = rng.permutation(n)
    mask = np.zeros(n, dtype=bool)
    mask[perm[: int(round(float(fraction) * n))]] = True
    return mask


def make_presence_mask(
    num_samples: int,
    num_modalities: int,
    rate: float,
    scheme: str = "cpm_atleast1",
    seed: int = 0,
) -> np.ndarray:
    """Presence mask ``[num_samples, num_modalities]`` (True = modality present).

    Args:
        num_samples: N >= 0.
        num_modalities: M >= 1.
        rate: target fraction of missing cells, in [0, 1). 0 gives all True.
        scheme: ``"cpm_atleast1"`` or ``"bernoulli"`` (see the module docstring).
        seed: seed of the numpy Generator; the same arguments give the same mask.
    """
    if scheme not in MASK_SCHEMES:
        raise ValueError(
            f"unknown mask scheme {scheme!r}; valid schemes: {', '.join(MASK_SCHEMES)}"
        )
    rate = float(rate)
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"missing rate must be in [0, 1), got {rate}")
    if int(num_samples) < 0 or int(num_modalities) < 1:
        raise ValueError(
            f"need num_samples >= 0 and num_modalities >= 1, got {num_samples}, {num_modalities}"
        )
    n, m = int(num_samples), int(num_modalities)
    if rate == 0.0 or n == 0:
        return np.ones((n, m), dtype=bool)
    rng = np.random.default_rng(seed)
    if scheme == "bernoulli":
        return rng.random((n, m)) >= rate

    # cpm_atleast1: one guaranteed modality per sample ...
    mask = np.zeros((n, m), dtype=bool)
    mask[np.arange(n), rng.integers(0, m, size=n)] = True
    if rate >= (m - 1) / m:
        return mask
    # ... then exactly the number of extra kept cells that hits the target fraction.
    extra = int(round(n * m * (1.0 - rate))) - n
    free = np.flatnonzero(~mask.ravel())
    extra = min(max(extra, 0), free.size)
    mask.ravel()[rng.choice(free, size=extra, replace=False)] = True
    return mask


def parse_train_mask(text: str, where: str = "train_mask") -> dict[str, str]:
    """``"audio:0.5,image:0.2"`` (braces and quotes allowed) -> ``{"audio": "0.5", ...}``;
    the ratios are checked by :func:`check_train_mask`."""
    items = {}
    for part in text.strip().strip("{}").split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, ratio = part.partition(":")
        if not sep or not name.strip() or not ratio.strip():
            raise ValueError(f"{where}: {part!r} is not MODALITY:RATIO (e.g. audio:0.5)")
        items[name.strip().strip("'\"")] = ratio.strip()
    return items


def check_train_mask(train_mask, modalities, where: str = "train_mask") -> dict[str, float]:
    """``train_mask`` (``{modality: ratio}``) as a plain dict, checked: every modality one of
    ``modalities``, every ratio a number in [0, 1]; a :class:`ValueError` naming ``where``
    (e.g. ``dataset_config.avdigits.train_mask``) otherwise."""
    if train_mask is None:
        return {}
    if isinstance(train_mask, str):  # the command line's form: "audio:0.5,image:0.2"
        train_mask = parse_train_mask(train_mask, where)
    if not hasattr(train_mask, "items"):
        raise ValueError(
            f"{where} must be a mapping {{modality: ratio}} or 'modality:ratio,...', "
            f"e.g. audio:0.5; got {train_mask!r}"
        )
    checked = {}
    for m, ratio in train_mask.items():
        if m not in modalities:
            raise ValueError(
                f"{where}.{m}: unknown modality {m!r}; the data's modalities: "
                f"{', '.join(map(str, modalities))}"
            )
        try:
            value = float(ratio)
        except (TypeError, ValueError):
            raise ValueError(f"{where}.{m} must be a number in [0, 1], got {ratio!r}") from None
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{where}.{m} must be in [0, 1], got {ratio!r}")
        checked[str(m)] = value
    return checked


def train_mask_absent(num_samples: int, modalities, train_mask, seed: int = 0) -> np.ndarray:
    """Bool ``[num_samples, len(modalities)]``, True where a modality is masked out for
    training (Figure 2's isolation experiment): for each ``modality: ratio`` of
    ``train_mask``, exactly ``round(ratio * num_samples)`` samples chosen uniformly
    (:func:`carve_mask`, one draw per modality from ``split_seed(seed, "train_mask_<m>")``,
    so each modality's draw does not depend on the others')."""
    absent = np.zeros((int(num_samples), len(modalities)), dtype=bool)
    for m, ratio in check_train_mask(train_mask, list(modalities)).items():
        rng = np.random.default_rng(split_seed(seed, f"train_mask_{m}"))
        absent[:, list(modalities).index(m)] = carve_mask(rng, int(num_samples), ratio)
    return absent


class TrainMasked:
    """A reader (:mod:`mla_plugin.data.reader`) with modalities masked out in a fraction of
    its samples (:func:`train_mask_absent`): their ``mask`` entry False and their input
    zero-filled, as a missing modality is everywhere else.  The masks the reader already
    had (the missing rate η) are kept; the builders wrap the train split only, so val and
    test stay as they are."""

    def __init__(self, reader, train_mask, seed: int = 0, where: str = "train_mask"):
        self.reader = reader
        self.modalities = list(reader.modalities)
        self.num_classes = reader.num_classes
        for attr in ("class_names", "feature_shapes"):
            if hasattr(reader, attr):
                setattr(self, attr, getattr(reader, attr))
        self.train_mask = check_train_mask(train_mask, self.modalities, where)
        import torch

        self.absent = torch.from_numpy(
            train_mask_absent(len(reader), self.modalities, self.train_mask, seed)
        )
        if hasattr(reader, "get_batch"):
            self.get_batch = self._get_batch

    def __len__(self):
        return len(self.reader)

    def _apply(self, item, rows):
        import torch

        keep = ~self.absent[rows]
        mask = item["mask"] & keep
        inputs = {}
        for k, m in enumerate(self.modalities):
            x = item["inputs"][m]
            present = mask[..., k].reshape(mask.shape[:-1] + (1,) * (x.dim() - mask.dim() + 1))
            inputs[m] = torch.where(present, x, torch.zeros((), dtype=x.dtype))
        return {**item, "inputs": inputs, "mask": mask}

    def __getitem__(self, i):
        i = range(len(self))[i]
        return self._apply(self.reader[i], i)

    def _get_batch(self, indices):
        import torch

        rows = torch.as_tensor([range(len(self))[j] for j in indices], dtype=torch.long)
        return self._apply(self.reader.get_batch(indices), rows)
