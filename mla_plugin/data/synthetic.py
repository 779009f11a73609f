"""``synthetic``: M feature-vector modalities with a per-modality informativeness.

Each class c has a random unit mean direction mu_{m,c} per modality; a sample of class
y has x_m = signal_m · mu_{m,y} + noise (unit Gaussian), so a modality with a large
``signal`` is dominant and one with a small ``signal`` is weak.  Joint training then
shows modality laziness in seconds on a CPU.  Deterministic by seed; the splits are
independent draws from the same class means.
"""

from collections.abc import Sequence

import torch

SPLIT_OFFSETS = {"train": 0, "val": 1, "test": 2}


class SyntheticDataset(torch.utils.data.Dataset):
    def __init__(
        self,
        split: str,
        modalities: Sequence[str] = ("strong", "weak"),
        signal: Sequence[float] = (3.0, 1.0),
        dim: int = 32,
        num_classes: int = 10,
        sizes: dict[str, int] | None = None,
        seed: int = 0,
        missing_rate: float = 0.0,
        mask_scheme: str = "cpm_atleast1",
    ):
        if split not in SPLIT_OFFSETS:
            raise ValueError(f"synthetic: unknown split {split!r}; valid: {list(SPLIT_OFFSETS)}")
        if len(modalities) < 2:
            raise ValueError(f"synthetic: needs at least 2 modalities, got {list(modalities)}")
        if len(signal) != len(modalities):
            raise ValueError(
                f"synthetic: 'signal' has {len(signal)} values for "
                f"{len(modalities)} modalities {list(modalities)}"
            )
        sizes = dict(sizes or {"train": 2000, "val": 500, "test": 1000})
        self.modalities: list[str] = list(modalities)
        self.num_classes = num_classes
        self.class_names = [str(c) for c in range(num_classes)]
        self.feature_shapes = {m: (dim,) for m in self.modalities}
        n = int(sizes[split])

        means_gen = torch.Generator().manual_seed(seed)
        means = torch.randn(len(modalities), num_classes, dim, generator=means_gen)
        means = means / means.norm(dim=-1, keepdim=True)

        gen = torch.Generator().manual_seed(seed * 1000 + 17 + SPLIT_OFFSETS[split])
        self.targets = torch.randint(num_classes, (n,), generator=gen)
        self.inputs = {}
        for i, m in enumerate(self.modalities):
            noise = torch.randn(n, dim, generator=gen)
            self.inputs[m] = float(signal[i]) * means[i, self.targets] + noise

        self.mask = torch.ones(n, len(self.modalities), dtype=torch.bool)
        if missing_rate:
            from mla_plugin.data.missing import make_presence_mask, split_seed

            self.mask = torch.as_tensor(
                make_presence_mask(
                    n, len(self.modalities), missing_rate, mask_scheme, split_seed(seed, split)
                )
            )
            for i, m in enumerate(self.modalities):
                self.inputs[m][~self.mask[:, i]] = 0.0

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, idx: int):
        return {
            "inputs": {m: x[idx] for m, x in self.inputs.items()},
            "mask": self.mask[idx],
            "targets": self.targets[idx],
            "index": torch.tensor(idx),
        }
