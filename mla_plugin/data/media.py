"""The paper datasets' readers (CREMA-D, Kinetics-Sounds, Food-101, MVSA, IEMOCAP): records,
the preprocessing cache and the dataset class.  Their other shared pieces have a module each:
:mod:`.splits` (sample ids, split lists, split assignment), :mod:`.jsonl`, :mod:`.video`
(ffmpeg, frames), :mod:`.audio` (fbank), :mod:`.text` (tokenizer, token ids) and
:mod:`.images` (loading, transforms).

Flow: a dataset module scans its owners' layout into :class:`Record` s (sample id, label,
source files or text), :func:`preprocess_records` caches what is expensive to decode
(audio -> Kaldi fbank ``.npy``, video -> 1-fps JPEG frames, text -> token ids), and
:class:`MediaDataset` serves one split from the raw images and the cache, so training never
decodes audio or video again.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..utils.io import atomic_np_save, atomic_savez, atomic_write_json
from .audio import compute_fbank
from .errors import DataError
from .features import BAD_SAMPLE_POLICIES, SPLITS
from .images import image_transform, load_image
from .missing import make_presence_mask, split_seed
from .splits import assign_splits
from .text import (
    load_tokenizer,
    read_token_texts,
    read_tokens,
    text_hash,
    tokenize,
    tokenizer_tag,
    tokens_path,
)
from .video import extract_frames, extract_wav, list_frames, select_frames


# ---------------------------------------------------------------------- records
@dataclass
class Record:
    """One sample: ``id`` (unique, file-name safe), integer ``label`` and its sources:
    ``files`` maps a source name (``wav``, ``video``, ``image``, ``frames_dir``) to a path,
    ``text`` holds the raw text when the dataset has one."""

    id: str
    label: int
    files: dict[str, Path] = field(default_factory=dict)
    text: str | None = None
    group: str | None = None  # the owners' split (e.g. "train"/"test") when they give one


# ------------------------------------------------------------------------ cache
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


# ----------------------------------------------------------------------- loading
class MediaDataset(Dataset):
    """One split of a paper dataset, served from raw images and the preprocessing cache.

    Modalities and their tensors:

    - ``audio``: cached fbank ``[1, target_length, mel_bins]`` (unnormalised, as the authors);
    - ``video``: the 3 selected frames of the sorted 1-fps frames, ``[num_frames, 3, S, S]``;
    - ``image``: ``files["image"]`` (or the middle of the sorted ``files["faces_dir"]``
      images), ``[3, S, S]``;
    - ``text``: cached token ids ``[max_length]`` (long; 0 = ``[PAD]``).

    Every source is checked when the split is built (existence; token ids present), so a
    missing file fails before training with a DataError naming sample and file, or, with
    ``on_bad_sample="skip"``, the sample is dropped and counted in ``self.skipped``.
    Absent modalities (missing-modality protocol) are zero-filled; ``mask`` is the per-sample
    presence.
    """

    def __init__(
        self,
        name: str,
        records: Sequence[Record],
        split: str,
        modalities: Sequence[str],
        class_names: Sequence[str],
        cache_dir: str | os.PathLike,
        *,
        image_size: int = 224,
        num_frames: int = 3,
        mel_bins: int = 128,
        target_length: int = 1024,
        tokenizer: str = "bert-base-uncased",
        max_length: int = 256,
        missing_rate: float = 0.0,
        mask_scheme: str = "cpm_atleast1",
        seed: int = 0,
        on_bad_sample: str = "error",
        howto: str = "",
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if on_bad_sample not in BAD_SAMPLE_POLICIES:
            raise ValueError(
                f"on_bad_sample must be one of {BAD_SAMPLE_POLICIES}, got {on_bad_sample!r}"
            )
        make_presence_mask(0, 1, missing_rate, mask_scheme)  # validates early
        self.name, self.split = name, split
        self.modalities = list(modalities)
        self.class_names = list(class_names)
        self.num_classes = len(self.class_names)
        self.cache_dir = Path(cache_dir)
        self.train = split == "train"
        self.image_size, self.num_frames = int(image_size), int(num_frames)
        self.max_length = int(max_length)
        self.feature_shapes = {
            "audio": (1, int(target_length), int(mel_bins)),
            "video": (self.num_frames, 3, self.image_size, self.image_size),
            "image": (3, self.image_size, self.image_size),
            "text": (self.max_length,),
        }
        self.feature_shapes = {m: self.feature_shapes[m] for m in self.modalities}
        self._tokens: dict[str, np.ndarray] = {}
        self.tokenizer = None  # the tokenizer of the cached ids (check_text_encoder)
        if "text" in self.modalities:
            try:
                tok = load_tokenizer(tokenizer, fallback_dir=self.cache_dir / "text" / "tokenizer")
            except DataError:
                tok = None  # no tokenizer, so no ids cached with it: _check reports every sample
            if tok is not None:
                self.tokenizer = tok
                self._tokens = read_tokens(tokens_path(self.cache_dir, tok, max_length))
        # paths of each record's selected frames / image, found once by _check
        self._video_frames: dict[str, list[Path]] = {}
        self._image_path: dict[str, Path] = {}

        kept, problems = [], []
        for r in records:
            if not 0 <= int(r.label) < self.num_classes:
                problems.append(
                    f"sample {r.id}: label {r.label} outside the {self.num_classes} classes"
                )
                continue
            err = self._check(r)
            if err:
                problems.append(f"sample {r.id}: {err}")
            else:
                kept.append(r)
        if problems:
            more = f" ({len(problems)} bad samples in split '{split}')"
            if on_bad_sample == "error":
                raise DataError(f"{name}: {problems[0]}{more}. {howto}".strip())
            warnings.warn(
                f"{name}: skipped {len(problems)} bad samples of split '{split}' "
                f"(first: {problems[0]})",
                stacklevel=2,
            )
        self.skipped = len(problems)
        if not kept:
            why = " after skipping bad samples" if problems else ""
            raise DataError(f"{name}: split '{split}' is empty{why}. {howto}".strip())
        self.records = kept
        self.targets = torch.tensor([int(r.label) for r in kept], dtype=torch.long)
        self.mask = torch.from_numpy(
            make_presence_mask(
                len(kept),
                len(self.modalities),
                missing_rate,
                mask_scheme,
                seed=split_seed(seed, split),
            )
        )
        self._img_tf = image_transform(self.train, self.image_size)

    # ----------------------------------------------------------------- checks
    def _frame_source(self, r: Record) -> Path:
        return (
            Path(r.files["frames_dir"])
            if "frames_dir" in r.files
            else frames_dir(self.cache_dir, r.id)
        )

    def _check(self, r: Record) -> str | None:
        for m in self.modalities:
            if m == "audio":
                p = fbank_path(self.cache_dir, r.id)
                if not p.is_file():
                    return f"cached fbank {p} not found (run the preprocessing command)"
            elif m == "video":
                d = self._frame_source(r)
                frames = list_frames(d)
                if not frames:
                    return f"no frames in {d} (run the preprocessing command)"
                self._video_frames[r.id] = select_frames(frames, self.num_frames)
            elif m == "image":
                if "faces_dir" in r.files:
                    faces = list_frames(Path(r.files["faces_dir"]))
                    if not faces:
                        return f"no face images in {r.files['faces_dir']}"
                    self._image_path[r.id] = faces[len(faces) // 2]
                elif not Path(r.files.get("image", "")).is_file():
                    return f"image file not found: {r.files.get('image')}"
                else:
                    self._image_path[r.id] = Path(r.files["image"])
            elif m == "text":
                if r.id not in self._tokens:
                    return "no cached token ids (run the preprocessing command)"
            else:
                raise DataError(f"{self.name}: unknown modality {m!r}")
        return None

    # ---------------------------------------------------------------- loading
    def _load(self, m: str, r: Record) -> torch.Tensor:
        if m == "audio":
            p = fbank_path(self.cache_dir, r.id)
            try:
                fb = np.load(p, allow_pickle=False)
            except Exception as exc:  # noqa: BLE001
                raise DataError(f"sample {r.id}: cannot read cached fbank {p}: {exc}") from exc
            if fb.shape != self.feature_shapes["audio"][1:]:
                raise DataError(
                    f"sample {r.id}: cached fbank {p} has shape {fb.shape}, expected "
                    f"{self.feature_shapes['audio'][1:]} (re-run preprocessing)"
                )
            return torch.from_numpy(fb.astype(np.float32))[None]
        if m == "video":
            return torch.stack(
                [self._img_tf(load_image(f, r.id)) for f in self._video_frames[r.id]]
            )
        if m == "image":
            return self._img_tf(load_image(self._image_path[r.id], r.id))
        return torch.from_numpy(self._tokens[r.id].astype(np.int64))

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict[str, object]:
        i = range(len(self))[i]
        r = self.records[i]
        inputs = {}
        for j, m in enumerate(self.modalities):
            if bool(self.mask[i, j]):
                inputs[m] = self._load(m, r)
            else:
                inputs[m] = torch.zeros(
                    self.feature_shapes[m], dtype=torch.long if m == "text" else torch.float32
                )
        return {
            "inputs": inputs,
            "mask": self.mask[i],
            "targets": self.targets[i],
            "index": torch.tensor(i, dtype=torch.long),
        }


def check_root(root: str | os.PathLike | None, name: str, howto: str) -> Path:
    """The dataset root, or a DataError saying where the data must be and how to get it."""
    if root is None:
        raise DataError(
            f"{name}: no data directory configured (dataset_config.{name}.data_dir). {howto}"
        )
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{name}: data directory not found: {root}. {howto}")
    return root


def limit_records(records: Sequence[Record], limit, name: str) -> list[Record]:
    """At most ``limit`` of ``records``, evenly spread over the list (so a class-sorted
    split keeps several classes), in their order; ``dataset_config.<name>.limit``."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise DataError(
            f"{name}: dataset_config.{name}.limit must be a positive integer (samples kept "
            f"per split) or null (all), got {limit!r}"
        )
    n = len(records)
    if n <= limit:
        return list(records)
    return [records[i * n // limit] for i in range(limit)]


def make_split(
    name: str,
    records: Sequence[Record],
    class_names: Sequence[str],
    split: str,
    modalities: Sequence[str],
    cache_dir: str | os.PathLike,
    *,
    seed: int = 0,
    split_lists: dict[str, str | None] | None = None,
    test_fraction: float = 0.1,
    val_fraction: float = 0.1,
    key: Callable[[Record], str] = lambda r: r.id,
    preprocess: bool = True,
    mel_bins: int = 128,
    target_length: int = 1024,
    fps: float = 1.0,
    tokenizer: str = "bert-base-uncased",
    max_length: int = 256,
    howto: str = "",
    limit: int | None = None,
    **dataset_kwargs,
) -> MediaDataset:
    """Assign splits (:func:`assign_splits`), cache what is missing for this split when
    ``preprocess`` is true (text: for every split at once, so one tokenizer serves all;
    a fallback vocabulary is trained on the train texts), then build the split's
    :class:`MediaDataset`. With ``preprocess`` false, missing cache entries are errors.
    ``limit`` keeps that many samples of every split (:func:`limit_records`), before
    anything is cached."""
    if not records:
        raise DataError(f"{name}: no samples found. {howto}".strip())
    parts = assign_splits(records, seed, split_lists, test_fraction, val_fraction, key, name)
    if limit is not None:
        parts = {s: limit_records(r, limit, name) for s, r in parts.items()}
    on_bad = dataset_kwargs.get("on_bad_sample", "error")
    if preprocess:
        media = [m for m in modalities if m in ("audio", "video")]
        if media:
            preprocess_records(
                parts[split],
                cache_dir,
                media,
                mel_bins=mel_bins,
                target_length=target_length,
                fps=fps,
                on_bad_sample=on_bad,
                desc=f"{name} {split}",
            )
        if "text" in modalities:
            everything = [r for s in SPLITS for r in parts[s]]
            preprocess_records(
                everything,
                cache_dir,
                ["text"],
                tokenizer=tokenizer,
                max_length=max_length,
                on_bad_sample=on_bad,
                tokenizer_texts=[r.text for r in parts["train"] if r.text is not None],
                desc=name,
            )
    return MediaDataset(
        name,
        parts[split],
        split,
        modalities,
        class_names,
        cache_dir,
        mel_bins=mel_bins,
        target_length=target_length,
        tokenizer=tokenizer,
        max_length=max_length,
        seed=seed,
        howto=howto,
        **dataset_kwargs,
    )
