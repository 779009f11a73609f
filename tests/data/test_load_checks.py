"""What a dataset must be, checked when it loads, each refusal naming the
file and key: modality names (empty, dotted, a sample's own field, a torch attribute,
listed twice), a single class, and WAVs of mixed sample rates or channel counts
(refused, never resampled); an empty val carve says why and what fixes it."""

import wave

import numpy as np
import pytest

from mla_plugin.data.audio import check_wav_formats
from mla_plugin.data.errors import DataError
from mla_plugin.data.features import FeaturesDataset
from mla_plugin.data.fsdd import fbank_cache
from mla_plugin.data.validation import check_modality_names, validate_splits
from tests.support import make_trainer


def _features(d, keys, y=(0, 1, 0, 1, 0, 1)):
    y = np.array(y)
    arrays = {"y": y, **{k: np.ones((len(y), 3), np.float32) for k in keys}}
    for split in ("train", "val", "test"):
        np.savez(d / f"{split}.npz", **arrays)
    return d


@pytest.mark.parametrize(
    "key, problem",
    [
        ("x_", r"modality name '' \(key 'x_'\) is empty"),
        ("x_b.v2", r"modality name 'b.v2' \(key 'x_b.v2'\) contains '.', which torch module"),
        ("x_mask", r"modality name 'mask' \(key 'x_mask'\) is a field every sample has"),
        ("x_targets", r"modality name 'targets' \(key 'x_targets'\) is a field every sample"),
        ("x_train", r"modality name 'train' \(key 'x_train'\) is an attribute of torch's"),
    ],
)
def test_a_bad_modality_name_in_a_features_file_names_file_and_key(tmp_path, key, problem):
    _features(tmp_path, ["x_audio", key])
    with pytest.raises(DataError, match=rf"^{tmp_path}/train.npz: {problem}"):
        FeaturesDataset(tmp_path, "train")
    _features(tmp_path, ["x_audio", "x_b_v2"])  # the name the message suggests loads
    assert FeaturesDataset(tmp_path, "train").modalities == ["audio", "b_v2"]


def test_a_modality_listed_twice_in_the_config_names_the_key(tmp_path):
    with pytest.raises(
        DataError,
        match=r"^dataset_config.synthetic.modalities: modality name 'strong' is listed "
        r"twice \(positions 0 and 1\)",
    ):
        make_trainer(
            str(tmp_path),
            "dataset_config.synthetic.modalities=['strong','strong']",
            "dataset_config.synthetic.sizes.train=32",
        )


def test_names_that_are_fine():
    check_modality_names(["audio", "video_2", "Text", "x1"], "here")
    with pytest.raises(DataError, match=r"^here: modality name 7 is empty"):
        check_modality_names(["a", 7], "here")


def test_a_single_class_is_refused_naming_the_file(tmp_path):
    _features(tmp_path, ["x_audio", "x_video"], y=(0, 0, 0, 0))
    readers = {s: FeaturesDataset(tmp_path, s) for s in ("train", "val", "test")}
    with pytest.raises(
        DataError,
        match=rf"^features: the data has a single class \('0'; e.g. {tmp_path}/train.npz row "
        r"\d\), so every prediction would be right and every accuracy 100 %",
    ):
        validate_splits(readers, "features")
    _features(tmp_path, ["x_audio", "x_video"], y=(0, 1, 0, 1))
    validate_splits({s: FeaturesDataset(tmp_path, s) for s in ("train", "val", "test")}, "f")


def _wav(path, rate, channels, frames=800):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.zeros(frames * channels, "<i2").tobytes())
    return path


def test_mixed_wav_formats_are_refused_naming_each_format_and_a_file(tmp_path):
    names = ["0_a_0.wav", "1_a_0.wav", "2_a_0.wav", "3_a_0.wav"]
    for n in names[:3]:
        _wav(tmp_path / n, 8000, 1)
    odd = _wav(tmp_path / names[3], 44100, 2)
    message = (
        rf"^avdigits: {tmp_path}: the WAV files differ in sample rate or channel count: 3 at "
        rf"8000 Hz mono \(e.g. {tmp_path}/0_a_0.wav\); 1 at 44100 Hz stereo \(e.g. {odd}\)\. "
        r".*ffmpeg -i in.wav -ar 8000 -ac 1 out.wav"
    )
    with pytest.raises(DataError, match=message):
        fbank_cache(tmp_path, names, tmp_path / "cache", mel_bins=8, frames=10)
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())
    _wav(odd, 8000, 1)  # converted: the same clips are computed
    feats = fbank_cache(tmp_path, names, tmp_path / "cache", mel_bins=8, frames=10)
    assert sorted(feats) == names and feats[names[3]].shape == (10, 8)
    # one channel count differing is refused too; an unreadable file is left to load_wav
    (tmp_path / "bad.wav").write_bytes(b"RIFF garbage")
    _wav(tmp_path / "x.wav", 8000, 2)
    with pytest.raises(DataError, match=r"1 at 8000 Hz stereo"):
        check_wav_formats([tmp_path / n for n in (*names, "bad.wav", "x.wav")], "w")


def test_an_empty_val_carve_says_why_and_which_fraction_fixes_it(tmp_path):
    from mla_plugin.data.avdigits import AVDigitsDataset

    # 3 rows and no val.npz: round(0.1 x 3) = 0 rows of val; 1/3 carves one
    _features(tmp_path, ["x_audio"], y=(0, 1, 0))
    (tmp_path / "val.npz").unlink()
    with pytest.raises(
        DataError,
        match=r"train.npz: split 'val' is empty \(there is no val.npz, so val is carved from "
        r"train.npz: round\(val_fraction x rows\) = round\(0.1 x 3\) = 0; set val_fraction "
        r"to at least 0.333 or add a val.npz\)",
    ):
        FeaturesDataset(tmp_path, "val", val_fraction=0.1)
    assert len(FeaturesDataset(tmp_path, "val", val_fraction=0.34)) == 1
    # avdigits: a per-digit carve; 2 clips per digit outside the test takes 0-4
    clips = [(f"{d}_s_{t}.wav", d, "s", t) for d in range(10) for t in (0, 5, 6)]
    why = AVDigitsDataset._why_empty(clips, "val", 0.1)
    assert why.endswith(
        "with at most 2 such clips per digit that rounds to 0. Set val_fraction to at least "
        "1/2 = 0.5, or add recordings"
    )
    assert AVDigitsDataset._audio_split(clips, "val", 0, 0.5, None)  # the fix carves some
    assert not AVDigitsDataset._audio_split(clips, "val", 0, 0.1, None)


def test_mixed_wav_formats_of_a_paper_dataset_are_refused_before_any_fbank(tmp_path):
    from mla_plugin.data.media_cache import preprocess_records
    from mla_plugin.data.record import Record

    records = [
        Record(f"s{i}", i % 2, {"wav": _wav(tmp_path / f"s{i}.wav", rate, 1)})
        for i, rate in enumerate((16000, 16000, 22050))
    ]
    with pytest.raises(
        DataError,
        match=r"^cremad: 3 WAV files: the WAV files differ in sample rate or channel count: 2 "
        r"at 16000 Hz mono .*; 1 at 22050 Hz mono \(e.g. \S*s2.wav\)",
    ):
        preprocess_records(
            records, tmp_path / "cache", ["audio"], mel_bins=8, target_length=10, desc="cremad"
        )
    assert not list((tmp_path / "cache").glob("fbank/*.npy"))  # nothing computed
