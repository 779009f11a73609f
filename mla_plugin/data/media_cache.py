"""The preprocessing cache of the paper datasets' readers: :func:`preprocess_records` decodes
what is expensive once (audio -> Kaldi fbank ``.npy``, video -> 1-fps JPEG frames, text ->
token ids) so that :class:`~.media.MediaDataset` never decodes audio or video again.

Cache layout (``cache_dir``)::

Cache layout (``cache_dir``)::

    fbank/<id>.npy                 float32 [target_length, mel_bins] (authors: 1024 x 128)
    fbank/manifest.json            mel_bins, target_length, the fbank code's version and each
                                   entry's source [size, mtime_ns]: other values re-extract
    frames/<id>/frame_00001.jpg    1 frame per second (ffmpeg), sorted by name
    text/tokens_<tag>_L<max_length>.npz   ids [N, max_length] int32, keys [N] (sample ids),
                                   texts [N] (text_hash of each entry's text: a changed
                                   text is re-tokenized); <tag> hashes the tokenizer's
                                   vocabulary (tokenizer_tag)
    text/tokenizer/                the fallback WordPiece tokenizer, when one was trained

Nothing here imports MMF.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..utils.io import atomic_np_save, atomic_savez, atomic_write_json
from .audio import check_wav_formats, compute_fbank
from .errors import DataError
from .record import Record
from .text import (
    load_tokenizer,
    read_token_texts,
    read_tokens,
    text_hash,
    tokenize,
    tokenizer_tag,
    tokens_path,
)
from .video import extract_frames, extract_wav, list_frames


def fbank_path(cache_dir: Path, sample_id: str) -> Path:
    return Path(cache_dir) / "fbank" / f"{sample_id}.npy"


def frames_dir(cache_dir: Path, sample_id: str) -> Path:
    return Path(cache_dir) / "frames" / sample_id


def fbank_manifest_path(cache_dir: Path) -> Path:
    return Path(cache_dir) / "fbank" / "manifest.json"


def fbank_code_version() -> str:
    """Hash of the source of the code that makes a cached fbank (WAV reading, Kaldi fbank,
    ffmpeg's WAV extraction) and of torchaudio's version."""
    import hashlib
    import inspect

    import torchaudio

    from . import audio, video

    funcs = (audio._pcm_to_float, audio.load_wav, audio.kaldi_fbank, audio.compute_fbank)
    parts = [inspect.getsource(f) for f in (*funcs, video.extract_wav)] + [torchaudio.__version__]
    return hashlib.sha1("\n".join(parts).encode()).hexdigest()[:16]


def source_stamp(path: Path) -> list[int]:
    """``[size, mtime_ns]`` of a source file: a changed or replaced source is re-extracted."""
    st = Path(path).stat()
    return [int(st.st_size), int(st.st_mtime_ns)]


def read_fbank_manifest(cache_dir: Path, mel_bins: int, target_length: int) -> dict | None:
    """The fbank cache's sources ``{id: [size, mtime_ns]}`` when its manifest records these
    extraction parameters and this code version; None when it records others (every entry
    is then stale) or there is no manifest (a cache from before manifests: also stale)."""
    path = fbank_manifest_path(cache_dir)
    try:
        with open(path, encoding="utf-8") as fh:
            man = json.load(fh)
    except (OSError, ValueError):
        return None
    want = {
        "mel_bins": int(mel_bins),
        "target_length": int(target_length),
        "code": fbank_code_version(),
    }
    if {k: man.get(k) for k in want} != want:
        return None
    return dict(man.get("sources") or {})


# ------------------------------------------------------------------ preprocessing
def preprocess_records(
    records: Sequence[Record],
    cache_dir: str | os.PathLike,
    modalities: Sequence[str],
    *,
    mel_bins: int = 128,
    target_length: int = 1024,
    fps: float = 1.0,
    tokenizer: str = "bert-base-uncased",
    max_length: int = 256,
    tokenizer_texts: Sequence[str] | None = None,
    on_bad_sample: str = "error",
    desc: str = "",
) -> dict[str, int]:
    """Cache what the given modalities need for ``records`` (resumable: existing entries are
    kept, files are written atomically, a rerun does only what is missing).

    - ``audio``: ``fbank/<id>.npy`` from ``files["wav"]``, or from ``files["video"]`` via a
      temporary 16 kHz WAV (ffmpeg);
    - ``video``: ``frames/<id>/`` at ``fps`` from ``files["video"]`` (ffmpeg), unless the
      record already points at extracted frames (``files["frames_dir"]``);
    - ``text``: token ids of every record's text in one ``text/tokens_*.npz`` (tokenizer
      from :func:`load_tokenizer`; the fallback vocabulary is trained on ``tokenizer_texts``).

    Returns counts ``{"done", "cached", "failed"}``; with ``on_bad_sample="error"`` the first
    bad input raises DataError naming the file and sample.
    """
    from tqdm.auto import tqdm

    cache_dir = Path(cache_dir)
    counts = {"done": 0, "cached": 0, "failed": 0}
    failures = []

    def _fail(rec, exc):
        if on_bad_sample == "error":
            raise DataError(f"sample {rec.id}: {exc}") from exc
        counts["failed"] += 1
        failures.append(f"{rec.id}: {exc}")

    if "audio" in modalities:
        # an entry is reused only for the same source file (size, mtime), the same
        # extraction parameters and the same code (fbank/manifest.json)
        sources = read_fbank_manifest(cache_dir, mel_bins, target_length) or {}

        def _stamp(r):
            src = r.files.get("wav") or r.files.get("video")
            return source_stamp(src) if src is not None and Path(src).is_file() else None

        stamps = {r.id: _stamp(r) for r in records}
        todo = [
            r
            for r in records
            if not fbank_path(cache_dir, r.id).is_file()
            or stamps[r.id] is None
            or sources.get(r.id) != stamps[r.id]
        ]
        counts["cached"] += len(records) - len(todo)
        if todo:  # the dataset's WAVs in one format (headers only), before any is computed
            wavs = [r.files["wav"] for r in records if "wav" in r.files]
            check_wav_formats(wavs, f"{desc or 'audio'}: {len(wavs)} WAV files")
        try:
            for r in tqdm(todo, desc=f"{desc} audio fbank", unit="clip", disable=not todo):
                try:
                    if "wav" in r.files:
                        fb = compute_fbank(r.files["wav"], mel_bins, target_length)
                    elif "video" in r.files:
                        with tempfile.TemporaryDirectory() as tmp:
                            wav = Path(tmp) / "a.wav"
                            extract_wav(r.files["video"], wav)
                            fb = compute_fbank(wav, mel_bins, target_length)
                    else:
                        raise DataError("no audio source (wav or video) for this sample")
                    atomic_np_save(fbank_path(cache_dir, r.id), fb)
                    sources[r.id] = stamps[r.id]
                    counts["done"] += 1
                except DataError as exc:
                    sources.pop(r.id, None)
                    _fail(r, exc)
        finally:
            if todo:
                fbank_manifest_path(cache_dir).parent.mkdir(parents=True, exist_ok=True)
                atomic_write_json(
                    {
                        "mel_bins": int(mel_bins),
                        "target_length": int(target_length),
                        "code": fbank_code_version(),
                        "sources": dict(sorted(sources.items())),
                    },
                    str(fbank_manifest_path(cache_dir)),
                )
    if "video" in modalities:
        todo = [
            r
            for r in records
            if "frames_dir" not in r.files and not list_frames(frames_dir(cache_dir, r.id))
        ]
        counts["cached"] += len(records) - len(todo)
        for r in tqdm(todo, desc=f"{desc} video frames", unit="clip", disable=not todo):
            try:
                if "video" not in r.files:
                    raise DataError("no video file and no extracted frames for this sample")
                extract_frames(r.files["video"], frames_dir(cache_dir, r.id), fps)
                counts["done"] += 1
            except DataError as exc:
                _fail(r, exc)
    if "text" in modalities:
        tok = load_tokenizer(
            tokenizer,
            tokenizer_texts or [r.text for r in records if r.text is not None],
            cache_dir / "text" / "tokenizer",
        )
        path = tokens_path(cache_dir, tok, max_length)
        have, made_from = read_tokens(path), read_token_texts(path)
        hashes = {r.id: text_hash(r.text) for r in records if r.text is not None}
        for k in [k for k in have if made_from.get(k) is None]:
            del have[k]  # no record of its text (an older cache): re-tokenized
        made_from = {k: h for k, h in made_from.items() if k in have}
        todo = [r for r in records if r.id not in have or made_from[r.id] != hashes.get(r.id)]
        counts["cached"] += len(records) - len(todo)
        for r in todo:
            if r.text is None:
                _fail(r, DataError("no text for this sample"))
        todo = [r for r in todo if r.text is not None]
        if todo:
            for start in tqdm(range(0, len(todo), 1024), desc=f"{desc} tokenize", unit="batch"):
                chunk = todo[start : start + 1024]
                for r, ids in zip(
                    chunk, tokenize(tok, [r.text for r in chunk], max_length), strict=False
                ):
                    have[r.id] = ids
                    made_from[r.id] = hashes[r.id]
            counts["done"] += len(todo)
            keys = sorted(have)
            atomic_savez(
                path,
                keys=np.array(keys, dtype=str),
                ids=np.stack([have[k] for k in keys]).astype(np.int32),
                texts=np.array([made_from[k] for k in keys], dtype=str),
            )
            atomic_write_json(
                {
                    "tokenizer": str(tokenizer),
                    "source": str(tok.name_or_path),
                    "tag": tokenizer_tag(tok),
                    "max_length": int(max_length),
                    "vocab_size": int(len(tok)),
                },
                str(path.parent / "tokenizer.json"),
            )
    if failures:
        warnings.warn(
            f"{desc}: {len(failures)} sample inputs failed preprocessing; those samples will be skipped "
            f"(first: {failures[0]})",
            stacklevel=2,
        )
    return counts
