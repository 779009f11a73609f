"""``avdigits``: a real two-modality benchmark in the spirit of AV-MNIST.

- **audio**: spoken digits from the Free Spoken Digit Dataset (FSDD; files
  ``{digit}_{speaker}_{take}.wav``, 8 kHz mono; CC BY-SA 4.0, credit the FSDD contributors),
  as a compact Kaldi log-mel fbank ``[1, audio_frames, audio_mel_bins]`` (unnormalised, like
  the authors' fbank; 100 frames = 1 s at a 10 ms shift, longer clips are truncated).
- **image**: scikit-learn's bundled handwritten digits (``load_digits``, 1,797 8x8 images),
  ``[1, 8, 8]`` scaled from 0..16 to [0, 1].

Splits (all deterministic given ``seed``):

- audio: the customary take split -- takes 0-4 are test, takes 5-49 train; val is a seeded
  ``val_fraction`` of the train takes, per class, and is excluded from train;
- images: per class, a seeded 30 % test pool; of the other 70 %, a seeded ``val_fraction`` val
  pool and the rest the train pool. The three image pools are disjoint;
- pairing: within a split and class, the clips (in file-name order) are paired with a seeded
  permutation of that class's image pool, cycling through it (train images are reused about
  twice, as there are ~270 train clips but ~113 train images per class).

``seed`` is the *data* seed: it fixes the val carve, image pools, pairing and missing masks.
To compare training seeds on the same data, keep it fixed and vary the trainer's seed.
The FSDD clips and their fbank cache are :mod:`.fsdd`'s.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch

from .errors import DataError
from .fsdd import default_fsdd_dir, fbank_cache, list_fsdd
from .missing import carve_mask, make_presence_mask, split_seed
from .paths import default_cache_path
from .reader import InMemorySplit

IMAGE_TEST_FRACTION = 0.3
TEST_TAKES = range(0, 5)


def default_cache_dir() -> Path:
    """``$MLA_CACHE_DIR/avdigits``, else ``<repo>/.cache/avdigits``."""
    return default_cache_path("avdigits")


class AVDigitsDataset(InMemorySplit):
    """One split of ``avdigits`` (see the module docstring).

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        fsdd_dir: FSDD root or recordings folder; default :func:`default_fsdd_dir`.
        cache_dir: fbank cache folder; default :func:`default_cache_dir`.
        seed: data seed (val carve, image pools, pairing, missing masks).
        val_fraction: fraction of the train takes (and of the non-test images) used as val.
        audio_mel_bins, audio_frames: fbank size; the audio tensor is ``[1, frames, mel_bins]``.
        missing_rate, mask_scheme: missing-modality protocol, an independent draw per split.
        max_per_class: keep at most this many clips per class (seeded subset) for quick tests.

    Items: ``{"inputs": {"audio": [1, T, F], "image": [1, 8, 8]}, "mask": BoolTensor [2],
    "targets": LongTensor, "index": LongTensor}``; absent modalities are zero-filled.
    Per-sample provenance: ``audio_files``, ``speakers``, ``takes``, ``image_indices``
    (rows of ``sklearn.datasets.load_digits()``).  ``data_report``: the files left out
    (``skipped_files``: names that do not parse) and read as far as they go
    (``repaired_files``: data chunk cut short), also warned about.
    """

    modalities = ["audio", "image"]
    num_classes = 10
    class_names = [str(d) for d in range(10)]

    def __init__(
        self,
        split: str,
        fsdd_dir: str | os.PathLike | None = None,
        cache_dir: str | os.PathLike | None = None,
        seed: int = 0,
        val_fraction: float = 0.1,
        audio_mel_bins: int = 40,
        audio_frames: int = 100,
        missing_rate: float = 0.0,
        mask_scheme: str = "cpm_atleast1",
        max_per_class: int | None = None,
    ) -> None:
        if split not in ("train", "val", "test"):
            raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
        if not 0.0 <= float(val_fraction) < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        if max_per_class is not None and int(max_per_class) < 1:
            raise ValueError(f"max_per_class must be >= 1 or None, got {max_per_class}")
        make_presence_mask(0, 1, missing_rate, mask_scheme)  # validates rate and scheme early
        self.split = split
        self.modalities = list(AVDigitsDataset.modalities)
        self.class_names = list(AVDigitsDataset.class_names)
        self.feature_shapes = {
            "audio": (1, int(audio_frames), int(audio_mel_bins)),
            "image": (1, 8, 8),
        }
        skipped: list[str] = []
        rec_dir, all_clips, clips, self.image_indices = self.pairing(
            split, fsdd_dir, seed, val_fraction, max_per_class, skipped=skipped
        )
        labels = np.array([c[1] for c in clips], dtype=np.int64)
        self.audio_files = [c[0] for c in clips]
        self.speakers = [c[2] for c in clips]
        self.takes = [c[3] for c in clips]
        images, _ = self._load_digits()

        # Audio features from the cache (all clips at once unless subsampling).
        needed = self.audio_files if max_per_class is not None else [c[0] for c in all_clips]
        cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        repaired: list[str] = []
        fb = fbank_cache(
            rec_dir, needed, cache, int(audio_mel_bins), int(audio_frames), repaired=repaired
        )
        if repaired:
            names = [Path(r).name for r in repaired]
            warnings.warn(
                f"avdigits: {len(names)} WAVs in {rec_dir} have a data chunk shorter than "
                f"their header says; read as far as they go (first: {', '.join(names[:5])})",
                stacklevel=2,
            )
        # what was left out or repaired, for the run's records (names, in sorted order)
        self.data_report = {
            "skipped_files": skipped,
            "repaired_files": sorted(Path(r).name for r in repaired),
        }
        audio = torch.from_numpy(np.stack([fb[n] for n in self.audio_files]))[:, None]
        image = torch.from_numpy(images[self.image_indices])[:, None]

        self.mask = torch.from_numpy(
            make_presence_mask(
                len(clips), 2, missing_rate, mask_scheme, seed=split_seed(seed, split)
            )
        )
        self.features = {
            "audio": audio * self.mask[:, 0, None, None, None],
            "image": image * self.mask[:, 1, None, None, None],
        }
        self.targets = torch.from_numpy(labels)

    @classmethod
    def pairing(
        cls, split, fsdd_dir=None, seed=0, val_fraction=0.1, max_per_class=None, skipped=None
    ):
        """The split's pairs: ``(recordings folder, every clip, the split's clips, the
        paired rows of load_digits() [N])``; clips are ``(file, digit, speaker, take)``.

        Images: the split's pool, paired by label with a seeded permutation, cycling.
        (:mod:`~mla_plugin.data.avdigits_features` builds its features from the same pairs.)
        """
        rec_dir, all_clips = list_fsdd(
            fsdd_dir if fsdd_dir is not None else default_fsdd_dir(), skipped=skipped
        )
        clips = cls._audio_split(all_clips, split, seed, val_fraction, max_per_class)
        if not clips:
            raise DataError(
                f"avdigits split '{split}' is empty (FSDD folder {rec_dir}, "
                f"val_fraction={val_fraction})" + cls._why_empty(all_clips, split, val_fraction)
            )
        labels = np.array([c[1] for c in clips], dtype=np.int64)
        _, image_labels = cls._load_digits()
        pool = cls._image_pools(image_labels, seed, val_fraction)[split]
        rng = np.random.default_rng(split_seed(seed, f"avdigits_pair_{split}"))
        image_indices = np.empty(len(clips), dtype=np.int64)
        for c in range(10):
            where = np.flatnonzero(labels == c)
            cand = rng.permutation(pool[c])
            if where.size and cand.size == 0:
                raise DataError(
                    f"avdigits: no '{split}' images of digit {c} (val_fraction too small?)"
                )
            if where.size:
                image_indices[where] = cand[np.arange(where.size) % cand.size]
        return rec_dir, all_clips, clips, image_indices

    @staticmethod
    def _why_empty(clips, split, val_fraction) -> str:
        """Why the val carve took nothing, and the val_fraction that takes one per digit."""
        if split != "val":
            return ""
        most = max(sum(c[1] == d and c[3] not in TEST_TAKES for c in clips) for d in range(10))
        if most == 0:
            return ": no clip outside the test takes 0-4"
        return (
            f": the val carve takes round(val_fraction x n) of each digit's n clips outside "
            f"the test takes 0-4, and with at most {most} such clips per digit that rounds to "
            f"0. Set val_fraction to at least 1/{most} = {1 / most:.3g}, or add recordings"
        )

    @staticmethod
    def _audio_split(clips, split, seed, val_fraction, max_per_class):
        """The split's clips: takes 0-4 test; a seeded per-class val carve from the rest."""
        if split == "test":
            chosen = [c for c in clips if c[3] in TEST_TAKES]
        else:
            rng = np.random.default_rng(split_seed(seed, "avdigits_val_audio"))
            chosen = []
            for d in range(10):
                cls = [c for c in clips if c[1] == d and c[3] not in TEST_TAKES]
                is_val = carve_mask(rng, len(cls), val_fraction)
                chosen += [c for c, v in zip(cls, is_val, strict=False) if v == (split == "val")]
        if max_per_class is not None:
            rng = np.random.default_rng(split_seed(seed, f"avdigits_subsample_{split}"))
            keep = []
            for d in range(10):
                cls = [c for c in chosen if c[1] == d]
                keep += [cls[i] for i in sorted(rng.permutation(len(cls))[:max_per_class])]
            chosen = keep
        return chosen

    @staticmethod
    def _load_digits() -> tuple[np.ndarray, np.ndarray]:
        from sklearn.datasets import load_digits

        d = load_digits()
        return (d.images / 16.0).astype(np.float32), d.target.astype(np.int64)

    @staticmethod
    def _image_pools(
        labels: np.ndarray, seed: int, val_fraction: float
    ) -> dict[str, list[np.ndarray]]:
        """Disjoint per-class image pools: 30 % test, then val_fraction of the rest val."""
        rng = np.random.default_rng(split_seed(seed, "avdigits_images"))
        pools: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
        for c in range(10):
            idx = rng.permutation(np.flatnonzero(labels == c))
            n_test = int(round(IMAGE_TEST_FRACTION * idx.size))
            rest = idx[n_test:]
            n_val = int(round(val_fraction * rest.size))
            pools["test"].append(np.sort(idx[:n_test]))
            pools["val"].append(np.sort(rest[:n_val]))
            pools["train"].append(np.sort(rest[n_val:]))
        return pools
