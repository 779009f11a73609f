"""Text: the tokenizer (a local one, or a fallback WordPiece vocabulary trained on the train
texts), the token-id cache file and small text files.

Nothing here imports MMF.
"""

from __future__ import annotations

import hashlib
import json
import os
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


def text_hash(text: str) -> str:
    """Short hash of a sample's text: cached ids are reused only for the same text."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def read_token_texts(path: Path) -> dict[str, str]:
    """The :func:`text_hash` each cached entry was made from, by sample id ({} for a cache
    file from before these hashes: every entry is then re-tokenized)."""
    if not path.is_file():
        return {}
    with np.load(path, allow_pickle=False) as z:
        if "texts" not in z.files:
            return {}
        return {str(k): str(h) for k, h in zip(z["keys"], z["texts"], strict=True)}


def load_tokenizer(
    name_or_path: str,
    fallback_texts: Sequence[str] | None = None,
    fallback_dir: Path | None = None,
    vocab_size: int = 30522,
):
    """A transformers tokenizer: ``name_or_path`` from a local folder or the local
    Hugging Face cache (never downloaded here). When neither has it and ``fallback_texts``
    are given, a lower-casing BERT WordPiece vocabulary (at most ``vocab_size`` entries,
    ``[PAD]`` = 0; :func:`fallback_vocab`, deterministic) is built from them and saved in
    ``fallback_dir`` for reuse, with a warning.
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
    warnings.warn(
        f"tokenizer {name_or_path!r} not available locally; training a WordPiece "
        f"vocabulary on {len(fallback_texts)} texts instead (deterministic)"
        + (f" (saved in {fallback_dir})" if fallback_dir else ""),
        stacklevel=2,
    )
    folder = Path(fallback_dir) if fallback_dir else Path(tempfile.mkdtemp(prefix="mla_wordpiece_"))
    folder.mkdir(parents=True, exist_ok=True)
    vocab = fallback_vocab(fallback_texts, vocab_size)
    tmp = folder / f"vocab.txt.{os.getpid()}.tmp"
    tmp.write_text("".join(t + "\n" for t in vocab), encoding="utf-8")
    os.replace(tmp, folder / "vocab.txt")
    return BertTokenizerFast.from_pretrained(str(folder), local_files_only=True, do_lower_case=True)


FALLBACK_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def fallback_vocab(texts: Sequence[str], vocab_size: int) -> list[str]:
    """A deterministic BERT WordPiece vocabulary of ``texts`` (the same texts give the same
    file in every run, whatever the threads; the ``tokenizers`` trainer breaks ties between
    equally frequent merges in hash order, so it does not).

    Texts are normalised and split as BERT's uncased tokenizer does; the vocabulary is the
    special tokens (``[PAD]`` = 0), every character seen (as a word start and as a
    ``##`` continuation, so every word can be spelled), then whole words by frequency
    (ties by the word itself) up to ``vocab_size`` entries.  It has whole words where a
    learned WordPiece vocabulary would also have sub-words: a documented simplification.
    """
    from collections import Counter

    from tokenizers.normalizers import BertNormalizer
    from tokenizers.pre_tokenizers import BertPreTokenizer

    norm, pre = BertNormalizer(lowercase=True), BertPreTokenizer()
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(w for w, _ in pre.pre_tokenize_str(norm.normalize_str(text)))
    chars = sorted({c for w in counts for c in w})
    vocab = list(FALLBACK_SPECIALS) + chars + ["##" + c for c in chars]
    if len(vocab) > vocab_size:
        raise DataError(
            f"fallback vocabulary: {len(vocab)} special tokens and characters do not fit in "
            f"vocab_size={vocab_size}"
        )
    seen = set(vocab)
    words = sorted((w for w in counts if w not in seen), key=lambda w: (-counts[w], w))
    return vocab + words[: vocab_size - len(vocab)]


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


def check_text_encoder(tok, params, where: str) -> None:
    """Refuse (DataError, naming both) a text encoder that would be fed ids from another
    vocabulary than its own: before training, not as an index error or silent nonsense.

    ``params``: the ``bert`` encoder's parameters (``pretrained``, ``vocab_size``,
    ``pad_id``; absent keys take :class:`~mla_plugin.core.encoders.BertTextEncoder`'s
    defaults).  With a ``pretrained`` folder its ``config.json`` gives the embedding rows
    and pad id, and a tokenizer saved in it must be the very one the ids come from
    (:func:`tokenizer_tag`).  Otherwise the ids must fit the ``vocab_size`` rows.  In both
    cases the tokenizer's ``[PAD]`` id must be the encoder's pad id and its unknown token
    must exist.
    """
    import inspect

    from ..core.encoders import BertTextEncoder

    defaults = {
        k: v.default for k, v in inspect.signature(BertTextEncoder.__init__).parameters.items()
    }
    params = {**defaults, **{k: v for k, v in dict(params or {}).items() if v is not None}}
    ours = f"tokenizer {tok.name_or_path!r} ({len(tok)} tokens, tag {tokenizer_tag(tok)})"
    rows, pad_id, model = int(params["vocab_size"]), int(params["pad_id"]), "random-init bert"
    pretrained = params.get("pretrained")
    if pretrained not in (None, "", "null"):
        folder = Path(os.path.expanduser(os.path.expandvars(str(pretrained))))
        model = f"pretrained text model {folder}"
        cfg_path = folder / "config.json"
        if cfg_path.is_file():
            cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
            rows = int(cfg.get("vocab_size", rows))
            pad_id = int(cfg.get("pad_token_id", pad_id) or 0)
        if any((folder / f).is_file() for f in ("vocab.txt", "tokenizer.json")):
            from transformers import AutoTokenizer

            theirs = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            if tokenizer_tag(theirs) != tokenizer_tag(tok):
                raise DataError(
                    f"{where}: {model} was trained with its own tokenizer ({len(theirs)} "
                    f"tokens, tag {tokenizer_tag(theirs)}), but the ids come from {ours}; "
                    f"set the dataset's tokenizer to {folder}"
                )
    if len(tok) > rows:
        raise DataError(
            f"{where}: {ours} makes ids up to {len(tok) - 1}, but {model} has {rows} "
            f"embedding rows (vocab_size); use the model's own tokenizer or raise vocab_size"
        )
    if tok.pad_token_id != pad_id:
        raise DataError(
            f"{where}: {ours} pads with id {tok.pad_token_id}, but {model} masks pad id {pad_id}"
        )
    if tok.unk_token is None or tok.unk_token not in tok.get_vocab():
        raise DataError(f"{where}: {ours} has no unknown token in its vocabulary")
