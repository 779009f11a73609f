"""Text: the tokenizer (a local one, or a fallback WordPiece vocabulary trained on the train
texts), the token-id cache file and small text files.

Nothing here imports MMF.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .errors import DataError


def tokenizer_tag(tok) -> str:
    """Short hash of a tokenizer's class and vocabulary: cached token ids are reused only by a
    tokenizer that makes the same ids (never fallback-vocabulary ids by a real BERT)."""
    vocab = sorted(tok.get_vocab().items(), key=lambda kv: (kv[1], kv[0]))
    return hashlib.sha1(json.dumps([type(tok).__name__, vocab]).encode()).hexdigest()[:8]


def tokens_path(cache_dir: Path, tok, max_length: int) -> Path:
    return Path(cache_dir) / "text" / f"tokens_{tokenizer_tag(tok)}_L{int(max_length)}.npz"


def read_tokens(path: Path) -> dict[str, np.ndarray]:
    """Cached token ids by sample id ({} when there is no cache file)."""
    if not path.is_file():
        return {}
    with np.load(path, allow_pickle=False) as z:
        return {str(k): v for k, v in zip(z["keys"], z["ids"], strict=False)}


def load_tokenizer(
    name_or_path: str,
    fallback_texts: Sequence[str] | None = None,
    fallback_dir: Path | None = None,
    vocab_size: int = 30522,
):
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
        return BertTokenizerFast.from_pretrained(
            str(fallback_dir), local_files_only=True, do_lower_case=True
        )
    if fallback_texts is None:
        raise DataError(
            f"tokenizer {name_or_path!r} is not available locally ({reason}); give a "
            f"local tokenizer folder (e.g. a saved bert-base-uncased)"
        )
    from tokenizers import BertWordPieceTokenizer

    warnings.warn(
        f"tokenizer {name_or_path!r} not available locally; training a WordPiece "
        f"vocabulary on {len(fallback_texts)} texts instead"
        + (f" (saved in {fallback_dir})" if fallback_dir else ""),
        stacklevel=2,
    )
    wp = BertWordPieceTokenizer(lowercase=True)
    wp.train_from_iterator(
        list(fallback_texts),
        vocab_size=vocab_size,
        min_frequency=1,
        special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
        show_progress=False,
    )
    folder = Path(fallback_dir) if fallback_dir else Path(tempfile.mkdtemp(prefix="mla_wordpiece_"))
    folder.mkdir(parents=True, exist_ok=True)
    wp.save_model(str(folder))
    return BertTokenizerFast.from_pretrained(str(folder), local_files_only=True, do_lower_case=True)


def tokenize(tokenizer, texts: Sequence[str], max_length: int = 256) -> np.ndarray:
    """Token ids ``[N, max_length]`` as the authors: no special tokens, padded (with the
    tokenizer's pad id) and truncated to ``max_length``."""
    enc = tokenizer(
        list(texts),
        add_special_tokens=False,
        padding="max_length",
        truncation=True,
        max_length=int(max_length),
    )
    return np.asarray(enc["input_ids"], dtype=np.int32).reshape(len(texts), int(max_length))


def read_text(path: Path) -> str:
    """A small text file as one line: UTF-8, else Latin-1 (MVSA has both)."""
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return " ".join(text.split())
