"""Shared pieces of the paper datasets: split lists, seeded splits, frame selection, the
preprocessing cache (resumable, ffmpeg-free paths), tokenization and the item format."""

import wave

import numpy as np
import pytest
import torch

from mla_plugin.data import media, media_cache, splits, text, video
from mla_plugin.data.errors import DataError
from mla_plugin.data.media import MediaDataset
from mla_plugin.data.record import Record
from mla_plugin.utils.io import atomic_np_save


def write_wav(path, seconds=0.3, rate=16000, freq=440.0):
    t = np.arange(int(seconds * rate)) / rate
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((0.3 * np.sin(2 * np.pi * freq * t) * 32767).astype("<i2").tobytes())


def write_jpg(path, seed=0, size=12):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray((rng.random((size, size, 3)) * 255).astype("uint8")).save(path)


def test_read_split_list_formats(tmp_path):
    p = tmp_path / "my_train_x.txt"
    p.write_text(
        "1001_DFA_ANG_XX.flv Anger\n4141.jpg neutral\n\n"
        "Ses01F_impro01_F000.mp4 [split|sign] Excuse me. [split|sign] neu\nbare_name\n"
    )
    assert splits.read_split_list(p) == [
        "1001_DFA_ANG_XX",
        "4141",
        "Ses01F_impro01_F000",
        "bare_name",
    ]
    with pytest.raises(DataError, match="split list not found: .*nope.txt"):
        splits.read_split_list(tmp_path / "nope.txt")
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(DataError, match="empty"):
        splits.read_split_list(tmp_path / "empty.txt")


def test_assign_splits_seeded_lists_and_groups(tmp_path):
    recs = [Record(f"s{i}", i % 3) for i in range(100)]
    a = splits.assign_splits(recs, 0, test_fraction=0.2, val_fraction=0.25, name="x")
    b = splits.assign_splits(recs, 0, test_fraction=0.2, val_fraction=0.25, name="x")
    c = splits.assign_splits(recs, 1, test_fraction=0.2, val_fraction=0.25, name="x")
    assert [len(a[s]) for s in ("train", "val", "test")] == [60, 20, 20]
    ids = {s: {r.id for r in a[s]} for s in a}
    assert (
        not ids["train"] & ids["val"]
        and not ids["train"] & ids["test"]
        and not ids["val"] & ids["test"]
    )
    assert all([r.id for r in a[s]] == [r.id for r in b[s]] for s in a)
    assert {r.id for r in c["test"]} != ids["test"]
    (tmp_path / "tr.txt").write_text("".join(f"s{i}.flv A\n" for i in range(10)) + "zz.flv A\n")
    (tmp_path / "te.txt").write_text("s50.flv A\ns51.flv A\n")
    with pytest.warns(UserWarning, match="1 of 11 samples .* not in the data"):
        d = splits.assign_splits(
            recs, 0, {"train": tmp_path / "tr.txt", "test": tmp_path / "te.txt"}, val_fraction=0.2
        )
    assert (
        [r.id for r in d["test"]] == ["s50", "s51"] and len(d["train"]) == 8 and len(d["val"]) == 2
    )
    with pytest.raises(DataError, match="needs at least 'train' and 'test'"):
        splits.assign_splits(recs, 0, {"train": tmp_path / "tr.txt"})
    grouped = [Record(f"g{i}", 0, group=("train", "dev", "test")[i % 3]) for i in range(9)]
    e = splits.assign_splits(grouped, 0)
    assert [len(e[s]) for s in ("train", "val", "test")] == [3, 3, 3]


def test_select_frames_sorted_authors_indices(tmp_path):
    names = [f"frame_{i:05d}.jpg" for i in (3, 1, 2, 5, 4, 6, 7)]
    for n in names:
        (tmp_path / n).write_bytes(b"x")
    frames = video.list_frames(tmp_path)
    assert [f.name for f in frames] == sorted(names)
    sel = video.select_frames(frames, 3)  # n = 7: indices 0, 2, 4
    assert [f.name for f in sel] == ["frame_00001.jpg", "frame_00003.jpg", "frame_00005.jpg"]
    assert [f.name for f in video.select_frames(frames[:2], 3)] == ["frame_00001.jpg"] * 3
    assert video.select_frames([], 3) == []


def test_preprocess_audio_resumable_and_bad_file(tmp_path):
    recs = []
    for i in range(3):
        write_wav(tmp_path / f"c{i}.wav", freq=300 + 100 * i)
        recs.append(Record(f"c{i}", i, {"wav": tmp_path / f"c{i}.wav"}))
    cache = tmp_path / "cache"
    counts = media_cache.preprocess_records(
        recs[:2], cache, ["audio"], mel_bins=16, target_length=40
    )
    assert counts == {"done": 2, "cached": 0, "failed": 0}
    fb = np.load(media_cache.fbank_path(cache, "c0"))
    assert fb.shape == (40, 16) and fb.dtype == np.float32 and np.isfinite(fb).all()
    assert (fb[:28] != 0).any() and (fb[30:] == 0).all()  # 0.3 s -> 28 frames, zero-padded
    counts = media_cache.preprocess_records(recs, cache, ["audio"], mel_bins=16, target_length=40)
    assert counts == {"done": 1, "cached": 2, "failed": 0}  # resumed
    (tmp_path / "bad.wav").write_bytes(b"RIFF junk")
    bad = Record("bad", 0, {"wav": tmp_path / "bad.wav"})
    with pytest.raises(DataError, match="sample bad: cannot read WAV file .*bad.wav"):
        media_cache.preprocess_records([bad], cache, ["audio"], mel_bins=16, target_length=40)
    with pytest.warns(UserWarning, match="1 sample inputs failed"):
        counts = media_cache.preprocess_records(
            [bad], cache, ["audio"], mel_bins=16, target_length=40, on_bad_sample="skip"
        )
    assert counts["failed"] == 1


def test_video_without_ffmpeg_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no ffmpeg on PATH
    monkeypatch.delenv("MLA_FFMPEG", raising=False)
    (tmp_path / "v.flv").write_bytes(b"FLV")
    rec = Record("v", 0, {"video": tmp_path / "v.flv"})
    with pytest.raises(DataError, match="sample v: ffmpeg is needed"):
        media_cache.preprocess_records([rec], tmp_path / "cache", ["video"])


def test_tokenize_fallback_vocabulary_and_cache(tmp_path):
    texts = ["the cat sat", "a dog ran far away", "cats and dogs"]
    recs = [Record(f"t{i}", 0, text=t) for i, t in enumerate(texts)]
    with pytest.warns(UserWarning, match="training a WordPiece vocabulary"):
        media_cache.preprocess_records(
            recs, tmp_path, ["text"], tokenizer="no-such-tokenizer", max_length=6
        )
    ds = MediaDataset(
        "t", recs, "test", ["text"], ["a"], tmp_path, tokenizer="no-such-tokenizer", max_length=6
    )
    ids = ds[1]["inputs"]["text"]
    assert ids.dtype == torch.long and ids.shape == (6,)
    assert (ids[:5] > 4).all() and ids[5] == 0  # 5 known word pieces, no special tokens, [PAD] = 0
    assert (ds[0]["inputs"]["text"][3:] == 0).all()
    again = media_cache.preprocess_records(
        recs, tmp_path, ["text"], tokenizer="no-such-tokenizer", max_length=6
    )
    assert again["cached"] == 3 and again["done"] == 0


def test_media_dataset_items_masks_and_bad_inputs(tmp_path):
    recs = []
    for i in range(40):
        write_jpg(tmp_path / "img" / f"{i}.jpg", seed=i)
        fb = np.full((20, 8), float(i), dtype=np.float32)
        atomic_np_save(media_cache.fbank_path(tmp_path / "c", f"s{i}"), fb)
        recs.append(Record(f"s{i}", i % 2, {"image": tmp_path / "img" / f"{i}.jpg"}))
    kw = dict(image_size=16, mel_bins=8, target_length=20)
    ds = MediaDataset("x", recs, "train", ["audio", "image"], ["a", "b"], tmp_path / "c", **kw)
    item = ds[5]
    assert item["inputs"]["audio"].shape == (1, 20, 8) and item["inputs"]["audio"][0, 0, 0] == 5
    assert item["inputs"]["image"].shape == (3, 16, 16) and item["mask"].tolist() == [True, True]
    assert item["targets"].item() == 1 and item["index"].item() == 5
    masked = MediaDataset(
        "x",
        recs,
        "test",
        ["audio", "image"],
        ["a", "b"],
        tmp_path / "c",
        missing_rate=0.25,
        seed=3,
        **kw,
    )
    assert abs((~masked.mask).float().mean().item() - 0.25) < 0.02 and masked.mask.any(1).all()
    j = int(torch.nonzero(~masked.mask[:, 0])[0])
    assert (masked[j]["inputs"]["audio"] == 0).all() and masked[j]["mask"][0].item() is False
    other = MediaDataset(
        "x",
        recs,
        "val",
        ["audio", "image"],
        ["a", "b"],
        tmp_path / "c",
        missing_rate=0.25,
        seed=3,
        **kw,
    )
    assert not torch.equal(masked.mask, other.mask)  # independent draw per split
    broken = recs + [Record("s99", 0, {"image": tmp_path / "img" / "nope.jpg"})]
    atomic_np_save(media_cache.fbank_path(tmp_path / "c", "s99"), np.zeros((20, 8), np.float32))
    with pytest.raises(DataError, match="sample s99: image file not found: .*nope.jpg"):
        MediaDataset("x", broken, "train", ["audio", "image"], ["a", "b"], tmp_path / "c", **kw)
    with pytest.warns(UserWarning, match="skipped 1 bad samples"):
        ok = MediaDataset(
            "x",
            broken,
            "train",
            ["audio", "image"],
            ["a", "b"],
            tmp_path / "c",
            on_bad_sample="skip",
            **kw,
        )
    assert len(ok) == 40 and ok.skipped == 1
    with pytest.raises(DataError, match="sample s0: label 7 outside the 2 classes"):
        MediaDataset(
            "x",
            [Record("s0", 7, recs[0].files)],
            "train",
            ["image"],
            ["a", "b"],
            tmp_path / "c",
            **kw,
        )
    with pytest.raises(DataError, match="cached fbank .*s77.npy not found"):
        MediaDataset(
            "x", [Record("s77", 0, {})], "train", ["audio"], ["a", "b"], tmp_path / "c", **kw
        )
    with pytest.raises(DataError, match="split 'val' is empty"):
        MediaDataset("x", [], "val", ["audio"], ["a", "b"], tmp_path / "c", **kw)
    (tmp_path / "img" / "0.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="sample s0: cannot read image .*0.jpg"):
        ds[0]


def test_text_and_image_encoders_local_weights(tmp_path):
    """The paper datasets' encoders: random init by default, local weights when given,
    a clear error for a weights path that does not exist; nothing is downloaded."""
    from torchvision.models import resnet18

    from mla_plugin.core.encoders import build_encoder

    ref = resnet18(weights=None)
    torch.save({f"module.{k}": v for k, v in ref.state_dict().items()}, tmp_path / "r18.pth")
    enc = build_encoder(
        {"type": "image_resnet18", "params": {"out_dim": 32, "weights": str(tmp_path / "r18.pth")}}
    )
    assert torch.equal(enc.body[0].weight, ref.conv1.weight) and enc(
        torch.randn(2, 3, 32, 32)
    ).shape == (2, 32)
    with pytest.raises(ValueError, match="pretrained weights not found at .*nope.pth"):
        build_encoder({"type": "image_resnet18", "params": {"weights": str(tmp_path / "nope.pth")}})
    tiny = dict(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, vocab_size=50)
    text = build_encoder({"type": "bert", "params": {"out_dim": 8, **tiny}})
    text.bert.save_pretrained(tmp_path / "bert")
    loaded = build_encoder(
        {"type": "bert", "params": {"out_dim": 8, "pretrained": str(tmp_path / "bert")}}
    )
    assert torch.equal(
        loaded.bert.embeddings.word_embeddings.weight, text.bert.embeddings.word_embeddings.weight
    )
    ids = torch.tensor(
        [[5, 6, 7, 0, 0], [0, 0, 0, 0, 0]]
    )  # the second: an absent (zero-filled) text
    out = loaded.eval()(ids)
    assert out.shape == (2, 8) and torch.isfinite(out).all()


def test_token_cache_keyed_by_vocabulary_not_name(tmp_path):
    """Ids made with the fallback vocabulary under a tokenizer's name are not reused once a
    real tokenizer of that name exists: the cache tag hashes the vocabulary."""
    from transformers import BertTokenizerFast

    texts = ["the cat sat", "a dog ran far away", "cats and dogs"]
    recs = [Record(f"t{i}", 0, text=t) for i, t in enumerate(texts)]
    name = str(tmp_path / "bert")  # not there yet: the fallback vocabulary is trained
    with pytest.warns(UserWarning, match="training a WordPiece vocabulary"):
        media_cache.preprocess_records(recs, tmp_path / "c", ["text"], tokenizer=name, max_length=6)
    fallback_ids = MediaDataset(
        "t", recs, "test", ["text"], ["a"], tmp_path / "c", tokenizer=name, max_length=6
    )[0]["inputs"]["text"]
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "zebra"] + sorted(
        {w for t in texts for w in t.split()}
    )
    BertTokenizerFast(vocab={w: i for i, w in enumerate(words)}).save_pretrained(name)
    real = text.load_tokenizer(name)
    assert text.tokenizer_tag(real) != text.tokenizer_tag(
        text.load_tokenizer("no-such-tokenizer", fallback_dir=tmp_path / "c" / "text" / "tokenizer")
    )
    again = media_cache.preprocess_records(
        recs, tmp_path / "c", ["text"], tokenizer=name, max_length=6
    )
    assert again == {"done": 3, "cached": 0, "failed": 0}  # re-tokenized, not reused
    ids = MediaDataset(
        "t", recs, "test", ["text"], ["a"], tmp_path / "c", tokenizer=name, max_length=6
    )[0]["inputs"]["text"]
    assert ids.tolist() == text.tokenize(real, texts[:1], 6)[0].tolist()
    assert not torch.equal(ids, fallback_ids)
    assert len(list((tmp_path / "c" / "text").glob("tokens_*_L6.npz"))) == 2


def test_items_use_the_frames_found_when_the_split_was_built(tmp_path, monkeypatch):
    """Frames and face images are listed once per record (construction), not per item."""
    for i in range(7):
        write_jpg(tmp_path / "frames" / "v" / f"{i:03d}.jpg", seed=i)
        write_jpg(tmp_path / "faces" / "v" / f"{i:03d}.jpg", seed=10 + i)
    rec = Record(
        "v", 0, {"frames_dir": tmp_path / "frames" / "v", "faces_dir": tmp_path / "faces" / "v"}
    )
    ds = MediaDataset("x", [rec], "test", ["video", "image"], ["a"], tmp_path / "c", image_size=8)
    assert [p.name for p in ds._video_frames["v"]] == ["000.jpg", "002.jpg", "004.jpg"]
    assert ds._image_path["v"].name == "003.jpg"  # the middle of the sorted faces

    def no_listing(folder):
        raise AssertionError(f"frames listed again: {folder}")

    monkeypatch.setattr(media, "list_frames", no_listing)  # where MediaDataset looks it up
    item = ds[0]
    assert item["inputs"]["video"].shape == (3, 3, 8, 8) and item["inputs"]["image"].shape == (
        3,
        8,
        8,
    )


def test_mmf_batch_fallback_fetches_each_item_once():
    """__getitems__ with fields of differing shapes returns Samples built from the items it
    already fetched (one reader fetch per index)."""
    from mla_plugin.builders.base import MultimodalDataset

    class Reader:
        modalities, num_classes = ["text"], 2
        calls = 0

        def __len__(self):
            return 4

        def __getitem__(self, i):
            Reader.calls += 1
            return {
                "inputs": {"text": torch.arange(i + 1)},
                "mask": torch.ones(1, dtype=torch.bool),
                "targets": torch.tensor(i % 2),
                "index": torch.tensor(i),
            }

    ds = MultimodalDataset("x", {}, "train", Reader())
    samples = ds.__getitems__([3, 1])
    assert Reader.calls == 2
    assert [s.text.tolist() for s in samples] == [[0, 1, 2, 3], [0, 1]]
    assert [int(s.index) for s in samples] == [3, 1] and int(samples[0].targets) == 1
