"""Shared pieces of the paper datasets' readers (CREMA-D, Kinetics-Sounds, Food-101, MVSA,
IEMOCAP): records and splits, the preprocessing cache, media loading and the dataset class.

Flow: a dataset module scans its owners' layout into :class:`Record` s (sample id, label,
source files or text), :func:`preprocess_records` caches what is expensive to decode
(audio -> Kaldi fbank ``.npy``, video -> 1-fps JPEG frames, text -> token ids), and
:class:`MediaDataset` serves one split from the raw images and the cache, so training never
decodes audio or video again.

Cache layout (``cache_dir``)::

    fbank/<id>.npy                 float32 [target_length, mel_bins] (authors: 1024 x 128)
    frames/<id>/frame_00001.jpg    1 frame per second (ffmpeg), sorted by name
    text/tokens_<tag>_L<max_length>.npz   ids [N, max_length] int32, keys [N] (sample ids);
                                   <tag> hashes the tokenizer's vocabulary (tokenizer_tag)
    text/tokenizer/                the fallback WordPiece tokenizer, when one was trained

Nothing here imports MMF.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

from ..utils.io import atomic_np_save, atomic_savez, atomic_write_json
from .audio import kaldi_fbank, load_wav
from .errors import DataError
from .features import BAD_SAMPLE_POLICIES, SPLITS
from .missing import carve_mask, make_presence_mask, split_seed

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# ---------------------------------------------------------------------- records
@dataclass
class Record:
    """One sample: ``id`` (unique, file-name safe), integer ``label`` and its sources:
    ``files`` maps a source name (``wav``, ``video``, ``image``, ``frames_dir``) to a path,
    ``text`` holds the raw text when the dataset has one."""

    id: str
    label: int
    files: Dict[str, Path] = field(default_factory=dict)
    text: Optional[str] = None
    group: Optional[str] = None  # the owners' split (e.g. "train"/"test") when they give one


def safe_id(*parts: str) -> str:
    """A file-name safe sample id from path parts."""
    s = "__".join(str(p) for p in parts if p)
    return "".join(c if (c.isalnum() or c in "-_.") else "_" for c in s)


def last_id_part(record: Record) -> str:
    """Split-list key of a record whose id carries its group (``train__4141`` -> ``4141``)."""
    return record.id.split("__")[-1]


def read_split_list(path: str | os.PathLike) -> List[str]:
    """Sample keys of an authors'-style split list, one sample per line.

    Accepted lines: ``<file> <label>`` (``my_train_cre.txt``: ``1001_DFA_ANG_XX.flv Anger``;
    MVSA/Food-101: ``4141.jpg neutral``), ``<file> [split|sign] <text> [split|sign] <label>``
    (IEMOCAP) or a bare file name. The key is the file name's stem (no folder, no extension).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"split list not found: {path}")
    keys = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            first = line.split(" [split|sign] ")[0].split()[0]
            keys.append(Path(first).stem)
    if not keys:
        raise DataError(f"split list {path} is empty")
    return keys


def assign_splits(
    records: Sequence[Record],
    seed: int,
    split_lists: Optional[Dict[str, Optional[str]]] = None,
    test_fraction: float = 0.1,
    val_fraction: float = 0.1,
    key: Callable[[Record], str] = lambda r: r.id,
    name: str = "dataset",
) -> Dict[str, List[Record]]:
    """Records per split, deterministically.

    1. ``split_lists`` (``{"train": path, "test": path, "val": path or None}``, e.g. the
       authors' ``my_train_cre.txt``): samples are matched by ``key(record)`` (file stem);
       listed samples absent from the data are reported in a warning and skipped.
    2. else the owners' split, when the records carry one (``record.group`` train/val/test);
    3. else a seeded random ``test_fraction`` of all records is the test set.

    In every case, when there is no val part, a seeded ``val_fraction`` of train is carved
    out as val (and removed from train).
    """
    parts: Dict[str, List[Record]] = {s: [] for s in SPLITS}
    lists = {k: v for k, v in (split_lists or {}).items() if v}
    if lists:
        if "train" not in lists or "test" not in lists:
            raise DataError(f"{name}: split_lists needs at least 'train' and 'test' files, got {sorted(lists)}")
        by_key = {}
        for r in records:
            by_key.setdefault(key(r), r)
        for s, p in lists.items():
            if s not in SPLITS:
                raise DataError(f"{name}: unknown split {s!r} in split_lists; valid: {SPLITS}")
            keys = read_split_list(p)
            missing = [k for k in keys if k not in by_key]
            if missing:
                warnings.warn(f"{name}: {len(missing)} of {len(keys)} samples of split list {p} "
                              f"are not in the data and are skipped (first: {missing[0]})",
                              stacklevel=2)
            parts[s] = [by_key[k] for k in keys if k in by_key]
    elif any(r.group for r in records):
        for r in records:
            g = {"dev": "val", "valid": "val", "validation": "val"}.get(r.group, r.group)
            if g not in SPLITS:
                raise DataError(f"{name}: sample {r.id} has unknown split {r.group!r}")
            parts[g].append(r)
    else:
        rng = np.random.default_rng(split_seed(seed, f"{name}_test_split"))
        perm = rng.permutation(len(records))
        n_test = int(round(test_fraction * len(records)))
        test_idx = set(perm[:n_test].tolist())
        parts["test"] = [r for i, r in enumerate(records) if i in test_idx]
        parts["train"] = [r for i, r in enumerate(records) if i not in test_idx]
    if not parts["val"] and parts["train"]:
        rng = np.random.default_rng(split_seed(seed, f"{name}_val_carve"))
        is_val = carve_mask(rng, len(parts["train"]), val_fraction)
        parts["val"] = [r for r, v in zip(parts["train"], is_val) if v]
        parts["train"] = [r for r, v in zip(parts["train"], is_val) if not v]
    return parts


def read_jsonl(path: Path) -> List[Tuple[int, dict]]:
    """``(line number, object)`` of each non-empty line of a jsonl file."""
    rows = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}, line {n}: not a JSON object ({exc})") from exc
            if not isinstance(row, dict):
                raise DataError(f"{path}, line {n}: not a JSON object (got {type(row).__name__})")
            rows.append((n, row))
    return rows


def jsonl_records(path: Path, rows: Sequence[Tuple[int, dict]], root: Path, classes: List[str]) -> List[Record]:
    """Records of the rows of an MMBT-style jsonl file (``img``, ``label``, ``text`` per line,
    from :func:`read_jsonl`); the file's stem is the group (``dev`` = val)."""
    group = {"dev": "val"}.get(path.stem, path.stem)
    out = []
    for n, row in rows:
        try:
            img, label, text = row["img"], str(row["label"]), str(row["text"])
        except KeyError as exc:
            raise DataError(f"{path}, line {n}: not a JSON object with img, label and text ({exc})") from exc
        if label not in classes:
            raise DataError(f"{path}, line {n}: label {label!r} is not one of the classes {classes}")
        img_path = root / img
        if not img_path.exists() and (root / "images" / img).exists():
            img_path = root / "images" / img
        out.append(Record(safe_id(group, Path(img).stem), classes.index(label), {"image": img_path}, text, group))
    return out


# ------------------------------------------------------------------------ cache
def fbank_path(cache_dir: Path, sample_id: str) -> Path:
    return Path(cache_dir) / "fbank" / f"{sample_id}.npy"


def frames_dir(cache_dir: Path, sample_id: str) -> Path:
    return Path(cache_dir) / "frames" / sample_id


def list_frames(folder: Path) -> List[Path]:
    """Image files of a frames folder, **sorted** by name (the authors' code did not sort)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS)


def select_frames(frames: Sequence[Path], num: int = 3) -> List[Path]:
    """The authors' selection: indices ``int(n / num) * i`` for ``i < num`` of the sorted frames
    (with fewer than ``num`` frames the indices are 0, so the first frame repeats)."""
    n = len(frames)
    if n == 0:
        return []
    return [frames[min(int(n / num) * i, n - 1)] for i in range(num)]


def compute_fbank(wav_path: Path, mel_bins: int = 128, target_length: int = 1024) -> np.ndarray:
    """Kaldi fbank of a WAV file, as in the authors' ``extract_fbank.py`` (see
    :func:`~mla_plugin.data.audio.kaldi_fbank`); raises DataError naming bad files."""
    wav, sr = load_wav(wav_path)
    fb = kaldi_fbank(wav, sr, num_mel_bins=mel_bins, target_length=target_length).numpy()
    if not np.isfinite(fb).all():
        raise DataError(f"fbank of {wav_path} has NaN/inf values")
    return fb.astype(np.float32)


def ffmpeg_binary() -> str:
    exe = os.environ.get("MLA_FFMPEG") or shutil.which("ffmpeg")
    if not exe:
        raise DataError(
            "ffmpeg is needed to decode video (frames at 1 fps, audio tracks) but was not found; "
            "install it (e.g. `apt-get install ffmpeg`) or set MLA_FFMPEG, or give frames/WAVs "
            "that are already extracted (see docs/datasets.md)")
    return exe


def extract_frames(video: Path, out_dir: Path, fps: float = 1.0) -> int:
    """Frames of ``video`` at ``fps`` as ``frame_00001.jpg ...`` in ``out_dir`` (atomically:
    written to a temporary folder first). Returns the number of frames."""
    exe = ffmpeg_binary()
    if not Path(video).is_file():
        raise DataError(f"video file not found: {video}")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        proc = subprocess.run(
            [exe, "-nostdin", "-loglevel", "error", "-i", str(video), "-vf", f"fps={fps}",
             "-q:v", "2", str(tmp / "frame_%05d.jpg")], capture_output=True, text=True)
        n = len(list_frames(tmp))
        if proc.returncode != 0 or n == 0:
            raise DataError(f"cannot extract frames from {video}: {proc.stderr.strip()[-300:] or 'no frames'}")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
        return n
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def extract_wav(video: Path, wav_out: Path, sample_rate: int = 16000) -> None:
    """The audio track of ``video`` as mono 16-bit PCM WAV at ``sample_rate`` (ffmpeg)."""
    exe = ffmpeg_binary()
    wav_out.parent.mkdir(parents=True, exist_ok=True)
    tmp = wav_out.with_name(f".{wav_out.stem}.tmp{os.getpid()}.wav")
    proc = subprocess.run(
        [exe, "-nostdin", "-loglevel", "error", "-y", "-i", str(video), "-vn", "-ac", "1",
         "-ar", str(sample_rate), "-acodec", "pcm_s16le", str(tmp)], capture_output=True, text=True)
    if proc.returncode != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        raise DataError(f"cannot extract the audio of {video}: {proc.stderr.strip()[-300:]}")
    os.replace(tmp, wav_out)


# ------------------------------------------------------------------------- text
def tokenizer_tag(tok) -> str:
    """Short hash of a tokenizer's class and vocabulary: cached token ids are reused only by a
    tokenizer that makes the same ids (never fallback-vocabulary ids by a real BERT)."""
    vocab = sorted(tok.get_vocab().items(), key=lambda kv: (kv[1], kv[0]))
    return hashlib.sha1(json.dumps([type(tok).__name__, vocab]).encode()).hexdigest()[:8]


def _tokens_path(cache_dir: Path, tok, max_length: int) -> Path:
    return Path(cache_dir) / "text" / f"tokens_{tokenizer_tag(tok)}_L{int(max_length)}.npz"


def _read_tokens(path: Path) -> Dict[str, np.ndarray]:
    """Cached token ids by sample id ({} when there is no cache file)."""
    if not path.is_file():
        return {}
    with np.load(path, allow_pickle=False) as z:
        return {str(k): v for k, v in zip(z["keys"], z["ids"])}


def load_tokenizer(name_or_path: str, fallback_texts: Optional[Sequence[str]] = None,
                   fallback_dir: Optional[Path] = None, vocab_size: int = 30522):
    """A transformers tokenizer: ``name_or_path`` from a local folder or the local
    Hugging Face cache (never downloaded here). When neither has it and ``fallback_texts``
    are given, a lower-casing BERT WordPiece vocabulary (at most ``vocab_size`` entries,
    ``[PAD]`` = 0) is trained on them and saved in ``fallback_dir`` for reuse, with a warning.
    """
    from transformers import AutoTokenizer, BertTokenizerFast

    try:
        return AutoTokenizer.from_pretrained(str(name_or_path), local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure means "not available locally"
        reason = exc
    if fallback_dir is not None and (Path(fallback_dir) / "vocab.txt").is_file():
        return BertTokenizerFast.from_pretrained(str(fallback_dir), local_files_only=True, do_lower_case=True)
    if fallback_texts is None:
        raise DataError(f"tokenizer {name_or_path!r} is not available locally ({reason}); give a "
                        f"local tokenizer folder (e.g. a saved bert-base-uncased)")
    from tokenizers import BertWordPieceTokenizer

    warnings.warn(f"tokenizer {name_or_path!r} not available locally; training a WordPiece "
                  f"vocabulary on {len(fallback_texts)} texts instead"
                  + (f" (saved in {fallback_dir})" if fallback_dir else ""), stacklevel=2)
    wp = BertWordPieceTokenizer(lowercase=True)
    wp.train_from_iterator(list(fallback_texts), vocab_size=vocab_size, min_frequency=1,
                           special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
                           show_progress=False)
    folder = Path(fallback_dir) if fallback_dir else Path(tempfile.mkdtemp(prefix="mla_wordpiece_"))
    folder.mkdir(parents=True, exist_ok=True)
    wp.save_model(str(folder))
    return BertTokenizerFast.from_pretrained(str(folder), local_files_only=True, do_lower_case=True)


def tokenize(tokenizer, texts: Sequence[str], max_length: int = 256) -> np.ndarray:
    """Token ids ``[N, max_length]`` as the authors: no special tokens, padded (with the
    tokenizer's pad id) and truncated to ``max_length``."""
    enc = tokenizer(list(texts), add_special_tokens=False, padding="max_length",
                    truncation=True, max_length=int(max_length))
    return np.asarray(enc["input_ids"], dtype=np.int32).reshape(len(texts), int(max_length))


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
    tokenizer_texts: Optional[Sequence[str]] = None,
    on_bad_sample: str = "error",
    desc: str = "",
) -> Dict[str, int]:
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
        todo = [r for r in records if not fbank_path(cache_dir, r.id).is_file()]
        counts["cached"] += len(records) - len(todo)
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
                counts["done"] += 1
            except DataError as exc:
                _fail(r, exc)
    if "video" in modalities:
        todo = [r for r in records if "frames_dir" not in r.files
                and not list_frames(frames_dir(cache_dir, r.id))]
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
        tok = load_tokenizer(tokenizer, tokenizer_texts or [r.text for r in records if r.text is not None],
                             cache_dir / "text" / "tokenizer")
        path = _tokens_path(cache_dir, tok, max_length)
        have = _read_tokens(path)
        todo = [r for r in records if r.id not in have]
        counts["cached"] += len(records) - len(todo)
        for r in todo:
            if r.text is None:
                _fail(r, DataError("no text for this sample"))
        todo = [r for r in todo if r.text is not None]
        if todo:
            for start in tqdm(range(0, len(todo), 1024), desc=f"{desc} tokenize", unit="batch"):
                chunk = todo[start:start + 1024]
                for r, ids in zip(chunk, tokenize(tok, [r.text for r in chunk], max_length)):
                    have[r.id] = ids
            counts["done"] += len(todo)
            keys = sorted(have)
            atomic_savez(path, keys=np.array(keys, dtype=str),
                         ids=np.stack([have[k] for k in keys]).astype(np.int32))
            atomic_write_json({"tokenizer": str(tokenizer), "source": str(tok.name_or_path),
                               "tag": tokenizer_tag(tok), "max_length": int(max_length),
                               "vocab_size": int(len(tok))}, str(path.parent / "tokenizer.json"))
    if failures:
        warnings.warn(f"{desc}: {len(failures)} sample inputs failed preprocessing; those samples will be skipped "
                      f"(first: {failures[0]})", stacklevel=2)
    return counts


# ----------------------------------------------------------------------- loading
def load_image(path: Path, sample_id: str = ""):
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except FileNotFoundError as exc:
        raise DataError(f"sample {sample_id}: image file not found: {path}") from exc
    except Exception as exc:  # noqa: BLE001 - PIL raises many types for broken files
        raise DataError(f"sample {sample_id}: cannot read image {path}: {exc}") from exc


def image_transform(train: bool, size: int = 224):
    """Train: RandomResizedCrop + horizontal flip; eval: Resize((size, size)); both with
    ImageNet normalisation (the authors' frame transform)."""
    from torchvision import transforms as T

    norm = [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    if train:
        return T.Compose([T.RandomResizedCrop(size), T.RandomHorizontalFlip()] + norm)
    return T.Compose([T.Resize((size, size))] + norm)


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
            raise ValueError(f"on_bad_sample must be one of {BAD_SAMPLE_POLICIES}, got {on_bad_sample!r}")
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
        self._tokens: Dict[str, np.ndarray] = {}
        if "text" in self.modalities:
            try:
                tok = load_tokenizer(tokenizer, fallback_dir=self.cache_dir / "text" / "tokenizer")
            except DataError:
                tok = None  # no tokenizer, so no ids cached with it: _check reports every sample
            if tok is not None:
                self._tokens = _read_tokens(_tokens_path(self.cache_dir, tok, max_length))
        # paths of each record's selected frames / image, found once by _check
        self._video_frames: Dict[str, List[Path]] = {}
        self._image_path: Dict[str, Path] = {}

        kept, problems = [], []
        for r in records:
            if not 0 <= int(r.label) < self.num_classes:
                problems.append(f"sample {r.id}: label {r.label} outside the {self.num_classes} classes")
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
            warnings.warn(f"{name}: skipped {len(problems)} bad samples of split '{split}' "
                          f"(first: {problems[0]})", stacklevel=2)
        self.skipped = len(problems)
        if not kept:
            why = " after skipping bad samples" if problems else ""
            raise DataError(f"{name}: split '{split}' is empty{why}. {howto}".strip())
        self.records = kept
        self.targets = torch.tensor([int(r.label) for r in kept], dtype=torch.long)
        self.mask = torch.from_numpy(make_presence_mask(
            len(kept), len(self.modalities), missing_rate, mask_scheme, seed=split_seed(seed, split)))
        self._img_tf = image_transform(self.train, self.image_size)

    # ----------------------------------------------------------------- checks
    def _frame_source(self, r: Record) -> Path:
        return Path(r.files["frames_dir"]) if "frames_dir" in r.files else frames_dir(self.cache_dir, r.id)

    def _check(self, r: Record) -> Optional[str]:
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
                raise DataError(f"sample {r.id}: cached fbank {p} has shape {fb.shape}, expected "
                                f"{self.feature_shapes['audio'][1:]} (re-run preprocessing)")
            return torch.from_numpy(fb.astype(np.float32))[None]
        if m == "video":
            return torch.stack([self._img_tf(load_image(f, r.id)) for f in self._video_frames[r.id]])
        if m == "image":
            return self._img_tf(load_image(self._image_path[r.id], r.id))
        return torch.from_numpy(self._tokens[r.id].astype(np.int64))

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> Dict[str, object]:
        i = range(len(self))[i]
        r = self.records[i]
        inputs = {}
        for j, m in enumerate(self.modalities):
            if bool(self.mask[i, j]):
                inputs[m] = self._load(m, r)
            else:
                inputs[m] = torch.zeros(self.feature_shapes[m],
                                        dtype=torch.long if m == "text" else torch.float32)
        return {"inputs": inputs, "mask": self.mask[i], "targets": self.targets[i],
                "index": torch.tensor(i, dtype=torch.long)}


def check_root(root: Optional[str | os.PathLike], name: str, howto: str) -> Path:
    """The dataset root, or a DataError saying where the data must be and how to get it."""
    if root is None:
        raise DataError(f"{name}: no data directory configured (dataset_config.{name}.data_dir). {howto}")
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{name}: data directory not found: {root}. {howto}")
    return root


def make_split(
    name: str,
    records: Sequence[Record],
    class_names: Sequence[str],
    split: str,
    modalities: Sequence[str],
    cache_dir: str | os.PathLike,
    *,
    seed: int = 0,
    split_lists: Optional[Dict[str, Optional[str]]] = None,
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
    **dataset_kwargs,
) -> MediaDataset:
    """Assign splits (:func:`assign_splits`), cache what is missing for this split when
    ``preprocess`` is true (text: for every split at once, so one tokenizer serves all;
    a fallback vocabulary is trained on the train texts), then build the split's
    :class:`MediaDataset`. With ``preprocess`` false, missing cache entries are errors."""
    if not records:
        raise DataError(f"{name}: no samples found. {howto}".strip())
    parts = assign_splits(records, seed, split_lists, test_fraction, val_fraction, key, name)
    on_bad = dataset_kwargs.get("on_bad_sample", "error")
    if preprocess:
        media = [m for m in modalities if m in ("audio", "video")]
        if media:
            preprocess_records(parts[split], cache_dir, media, mel_bins=mel_bins,
                               target_length=target_length, fps=fps, on_bad_sample=on_bad,
                               desc=f"{name} {split}")
        if "text" in modalities:
            everything = [r for s in SPLITS for r in parts[s]]
            preprocess_records(everything, cache_dir, ["text"], tokenizer=tokenizer,
                               max_length=max_length, on_bad_sample=on_bad,
                               tokenizer_texts=[r.text for r in parts["train"] if r.text is not None],
                               desc=name)
    return MediaDataset(name, parts[split], split, modalities, class_names, cache_dir,
                        mel_bins=mel_bins, target_length=target_length, tokenizer=tokenizer,
                        max_length=max_length, seed=seed, howto=howto, **dataset_kwargs)


def read_text(path: Path) -> str:
    """A small text file as one line: UTF-8, else Latin-1 (MVSA has both)."""
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return " ".join(text.split())
