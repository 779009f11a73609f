"""The fallback WordPiece vocabulary is deterministic, and a text encoder is checked
against the tokenizer of its ids before training."""

import json

import pytest

from mla_plugin.data.errors import DataError
from mla_plugin.data.text import check_text_encoder, fallback_vocab, load_tokenizer, tokenize

TEXTS = [
    "the cat sat on the mat",
    "A dog, a CAT and a bird!",
    "café au lait",
    "sat sat dog mat bird zebra",
] * 3 + [f"word{i} tie{i % 7}" for i in range(40)]


def test_fallback_vocabulary_is_the_same_file_every_time(tmp_path):
    with pytest.warns(UserWarning, match="training a WordPiece vocabulary on 52 texts"):
        a = load_tokenizer(str(tmp_path / "none"), TEXTS, tmp_path / "a", vocab_size=100)
    with pytest.warns(UserWarning):
        load_tokenizer(str(tmp_path / "none"), TEXTS, tmp_path / "b", vocab_size=100)
    assert (tmp_path / "a" / "vocab.txt").read_bytes() == (
        tmp_path / "b" / "vocab.txt"
    ).read_bytes()
    vocab = fallback_vocab(TEXTS, 100)
    assert vocab == fallback_vocab(list(TEXTS), 100) and len(vocab) == 100
    assert vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    # most frequent whole words first, ties by the word; accents stripped, lower-cased
    assert "cafe" in vocab and "the" in vocab and "Cat".lower() in vocab
    ids = tokenize(a, ["the zebra sat"], max_length=5)[0].tolist()
    assert ids[-2:] == [0, 0] and a.convert_ids_to_tokens(ids[:3]) == ["the", "zebra", "sat"]
    assert len(a) == 100 and a.pad_token_id == 0


def test_text_encoder_must_match_the_tokenizer(tmp_path):
    with pytest.warns(UserWarning):
        tok = load_tokenizer(str(tmp_path / "none"), TEXTS, tmp_path / "tok", vocab_size=100)
    check_text_encoder(tok, {"vocab_size": 100}, "where")  # fits
    with pytest.raises(
        DataError, match=r"where: tokenizer .*100 tokens.*ids up to 99.*10 embedding"
    ):
        check_text_encoder(tok, {"vocab_size": 10}, "where")
    with pytest.raises(DataError, match=r"pads with id 0, but random-init bert masks pad id 3"):
        check_text_encoder(tok, {"vocab_size": 100, "pad_id": 3}, "where")
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(
        json.dumps({"model_type": "bert", "vocab_size": 120, "pad_token_id": 0})
    )
    (model / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "x"]))
    with pytest.raises(DataError, match=rf"pretrained text model {model} was trained with its own"):
        check_text_encoder(tok, {"pretrained": str(model)}, "where")
    (model / "vocab.txt").unlink()
    check_text_encoder(tok, {"pretrained": str(model)}, "where")  # 100 ids fit its 120 rows
    (model / "config.json").write_text(json.dumps({"vocab_size": 30, "pad_token_id": 0}))
    with pytest.raises(DataError, match=rf"but pretrained text model {model} has 30 embedding"):
        check_text_encoder(tok, {"pretrained": str(model)}, "where")
