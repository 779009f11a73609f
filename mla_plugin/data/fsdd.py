"""The Free Spoken Digit Dataset (FSDD), the audio of ``avdigits``: finding its clips, and
their Kaldi fbank cache.

The fbank is computed once per parameter set into ``<cache_dir>/fsdd_fbank_*.npz`` (written
atomically; new clips are merged in, and partial work is saved if a build is interrupted).
Each entry is keyed by the WAV's content hash, the file by the extraction parameters and the
extractor's code version (:func:`extractor_version`), so nothing but the same bytes through
the same code is ever reused.  No MMF import.
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from pathlib import Path

import numpy as np

from ..utils.io import atomic_savez
from .audio import check_wav_formats, kaldi_fbank, load_wav
from .errors import DataError
from .paths import default_data_path

CACHE_VERSION = 2  # 2: keyed by content hash and extractor version (1: name and size)
_NAME_RE = re.compile(r"^(\d)_(.+)_(\d+)\.wav$")
FSDD_HOWTO = (
    "Get the Free Spoken Digit Dataset (CC BY-SA 4.0) from "
    "https://github.com/Jakobovski/free-spoken-digit-dataset (folder 'recordings/', also on "
    "Zenodo) and pass its path as fsdd_dir or set MLA_FSDD_DIR."
)


def default_fsdd_dir() -> Path:
    """``$MLA_FSDD_DIR``, else ``<repo>/../shared/data/fsdd``."""
    return default_data_path("MLA_FSDD_DIR", "shared", "data", "fsdd")


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
    if todo:  # every clip in one format (headers only), before any is computed
        check_wav_formats([rec_dir / n for n in names if digests[n]], f"avdigits: {rec_dir}")
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
