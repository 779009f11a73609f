"""The paper datasets' readers (CREMA-D, Kinetics-Sounds, Food-101, MVSA, IEMOCAP): the
dataset class and the split maker.  Their shared pieces have a module each:
:mod:`.record` (the :class:`~.record.Record` of one sample, root and size checks),
:mod:`.media_cache` (the preprocessing cache and its layout), :mod:`.splits` (sample ids,
split lists, split assignment), :mod:`.jsonl`, :mod:`.video` (ffmpeg, frames), :mod:`.audio`
(fbank), :mod:`.text` (tokenizer, token ids) and :mod:`.images` (loading, transforms).

Flow: a dataset module scans its owners' layout into records (sample id, label, source
files or text), :func:`~.media_cache.preprocess_records` caches what is expensive to decode,
and :class:`MediaDataset` serves one split from the raw images and the cache, so training
never decodes audio or video again.

Nothing here imports MMF.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .errors import DataError
from .features import BAD_SAMPLE_POLICIES, SPLITS
from .images import image_transform, load_image
from .media_cache import fbank_path, frames_dir, preprocess_records
from .missing import make_presence_mask, split_seed
from .record import Record, limit_records
from .splits import assign_splits
from .text import load_tokenizer, read_tokens, tokens_path
from .video import list_frames, select_frames


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
