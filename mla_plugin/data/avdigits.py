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

The fbank is computed once per parameter set into ``<cache_dir>/fsdd_fbank_*.npz`` (written
atomically; new clips are merged in, and partial work is saved if a build is interrupted).
Each entry is keyed by the WAV's content hash, the file by the extraction parameters and the
extractor's code version (:func:`extractor_version`), so nothing but the same bytes through
the same code is ever reused.
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..utils.io import atomic_savez
from .audio import kaldi_fbank, load_wav
from .errors import DataError
from .missing import carve_mask, make_presence_mask, split_seed
from .paths import default_cache_path, default_data_path

CACHE_VERSION = 2  # 2: keyed by content hash and extractor version (1: name and size)
IMAGE_TEST_FRACTION = 0.3
TEST_TAKES = range(0, 5)
_NAME_RE = re.compile(r"^(\d)_(.+)_(\d+)\.wav$")
FSDD_HOWTO = (
    "Get the Free Spoken Digit Dataset (CC BY-SA 4.0) from "
    "https://github.com/Jakobovski/free-spoken-digit-dataset (folder 'recordings/', also on "
    "Zenodo) and pass its path as fsdd_dir or set MLA_FSDD_DIR."
)


def default_fsdd_dir() -> Path:
    """``$MLA_FSDD_DIR``, else ``<repo>/../shared/data/fsdd``."""
    return default_data_path("MLA_FSDD_DIR", "shared", "data", "fsdd")


def default_cache_dir() -> Path:
    """``$MLA_CACHE_DIR/avdigits``, else ``<repo>/.cache/avdigits``."""
    return default_cache_path("avdigits")


def list_fsdd(
    fsdd_dir: str | os.PathLike, skipped: list[str] | None = None
) -> tuple[Path, list[tuple[str, int, str, int]]]:
    """Recordings folder and its clips as ``(file name, digit, speaker, take)``, sorted by
    ``(digit, speaker, take)`` (so the folder's listing order never matters).

    ``fsdd_dir`` may be the dataset root (holding ``recordings/``) or the recordings folder.
    Files whose names do not parse as ``{digit}_{speaker}_{take}.wav`` are left out, and
    counted: their names are appended to ``skipped`` when given, and a warning names the
    count and the first few (hidden files and sub-folders are ignored).
    """
    root = Path(fsdd_dir)
    if not root.is_dir():
        raise DataError(f"FSDD directory not found: {root}. {FSDD_HOWTO}")
    rec = root / "recordings" if (root / "recordings").is_dir() else root
    clips, bad = [], []
    for name in sorted(os.listdir(rec)):
        mt = _NAME_RE.match(name)
        if mt:
            clips.append((name, int(mt.group(1)), mt.group(2), int(mt.group(3))))
        elif not name.startswith(".") and not (rec / name).is_dir():
            bad.append(name)
    if not clips:
        raise DataError(
            f"no FSDD recordings '{{digit}}_{{speaker}}_{{take}}.wav' in {rec}. {FSDD_HOWTO}"
        )
    keys = [(c[1], c[2], c[3]) for c in clips]
    if len(set(keys)) != len(keys):
        dup = sorted(c[0] for c in clips if keys.count((c[1], c[2], c[3])) > 1)
        raise DataError(
            f"{rec}: recordings {dup[:6]} name the same (digit, speaker, take); keep one of each"
        )
    if bad:
        warnings.warn(
            f"avdigits: skipped {len(bad)} files in {rec} whose names are not "
            f"'{{digit}}_{{speaker}}_{{take}}.wav' (first: {', '.join(bad[:5])})",
            stacklevel=2,
        )
        if skipped is not None:
            skipped.extend(bad)
    clips.sort(key=lambda c: (c[1], c[2], c[3]))
    return rec, clips


def _cache_path(cache_dir: Path, mel_bins: int, frames: int, frame_shift: float) -> Path:
    return (
        cache_dir / f"fsdd_fbank_mel{mel_bins}_t{frames}_shift{frame_shift:g}_v{CACHE_VERSION}.npz"
    )


def extractor_version() -> str:
    """What the fbank code is: a hash of the source of the functions that turn a WAV file
    into the cached fbank, and of torchaudio's version.  A cache built by other code (or
    another torchaudio) is rebuilt, never reused."""
    import inspect

    import torchaudio

    from . import audio

    parts = [inspect.getsource(f) for f in (audio._pcm_to_float, audio.load_wav, audio.kaldi_fbank)]
    parts.append(torchaudio.__version__)
    return hashlib.sha1("\n".join(parts).encode()).hexdigest()[:16]


def file_digest(path: Path) -> str:
    """Content hash of a file (the cache key of its fbank, with the extraction parameters
    and :func:`extractor_version`): a different file of the same name and size is read."""
    return hashlib.blake2b(Path(path).read_bytes(), digest_size=16).hexdigest()


def _save_cache(path: Path, feats: dict[str, tuple[str, np.ndarray, bool]], extractor: str) -> None:
    names = sorted(feats)
    atomic_savez(
        path,
        names=np.array(names, dtype=str),
        digests=np.array([feats[n][0] for n in names], dtype=str),
        fbank=np.stack([feats[n][1] for n in names]).astype(np.float32),
        repaired=np.array([feats[n][2] for n in names], dtype=bool),
        extractor=np.array(extractor),
    )


def _load_cache(path: Path, extractor: str) -> dict[str, tuple[str, np.ndarray, bool]]:
    if not path.is_file():
        return {}
    try:
        with np.load(path, allow_pickle=False) as z:
            if "digests" not in z.files or str(z["extractor"]) != extractor:
                return {}  # built by other fbank code, or keyed by size only (v1): rebuilt
            names, digests, fb, rep = z["names"], z["digests"], z["fbank"], z["repaired"]
        return {
            str(n): (str(d), fb[i], bool(r))
            for i, (n, d, r) in enumerate(zip(names, digests, rep, strict=True))
        }
    except Exception as exc:  # a corrupt cache is rebuilt, never trusted
        warnings.warn(f"ignoring unreadable fbank cache {path}: {exc}", stacklevel=3)
        return {}


def fbank_cache(
    rec_dir: Path,
    names: list[str],
    cache_dir: Path,
    mel_bins: int,
    frames: int,
    frame_shift: float = 10.0,
    repaired: list[str] | None = None,
) -> dict[str, np.ndarray]:
    """Fbank ``[frames, mel_bins]`` of each named clip, computed once and cached on disk.

    The cache file is named by the extraction parameters and holds, per clip, the content
    hash of its WAV (:func:`file_digest`) and, for the whole file, the
    :func:`extractor_version`: an entry is reused only for the very same bytes extracted
    by the very same code.  Missing entries are computed (with a tqdm bar), one clip at a
    time in ``names``' order, and merged into the cache file, which is replaced
    atomically.  If the build is interrupted, what was computed so far is saved, so the
    next run resumes.  WAVs whose data chunk is shorter than their header says are read as
    far as they go and their names appended to ``repaired`` (the caller reports them).
    """
    from tqdm.auto import tqdm

    path = _cache_path(cache_dir, mel_bins, frames, frame_shift)
    extractor = extractor_version()
    feats = _load_cache(path, extractor)
    digests = {n: file_digest(rec_dir / n) if (rec_dir / n).exists() else "" for n in names}
    todo = [
        n
        for n in names
        if n not in feats or feats[n][0] != digests[n] or feats[n][1].shape != (frames, mel_bins)
    ]
    if todo:
        done = 0
        try:
            for n in tqdm(todo, desc=f"avdigits fbank -> {path.name}", unit="clip"):
                cut: list[str] = []
                wav, sr = load_wav(rec_dir / n, repaired=cut)
                fb = kaldi_fbank(
                    wav, sr, num_mel_bins=mel_bins, target_length=frames, frame_shift=frame_shift
                )
                feats[n] = (digests[n], fb.numpy(), bool(cut))
                done += 1
        finally:
            if done:
                _save_cache(path, feats, extractor)
    if repaired is not None:
        repaired.extend(n for n in names if feats[n][2])
    return {n: feats[n][1] for n in names}


class AVDigitsDataset(Dataset):
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
                f"val_fraction={val_fraction})"
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

    def __len__(self) -> int:
        return int(self.targets.shape[0])

    def __getitem__(self, i: int) -> dict[str, object]:
        i = range(len(self))[i]
        return {
            "inputs": {m: self.features[m][i] for m in self.modalities},
            "mask": self.mask[i],
            "targets": self.targets[i],
            "index": torch.tensor(i, dtype=torch.long),
        }

    def get_batch(self, indices) -> dict[str, object]:
        """The items at ``indices`` as one item with every field stacked (``[B, ...]``),
        by one indexing per field instead of one per sample; the MMF dataset
        (:class:`~mla_plugin.builders.base.MultimodalDataset`) fetches batches with it."""
        i = torch.tensor([range(len(self))[j] for j in indices], dtype=torch.long)
        return {
            "inputs": {m: self.features[m][i] for m in self.modalities},
            "mask": self.mask[i],
            "targets": self.targets[i],
            "index": i,
        }
