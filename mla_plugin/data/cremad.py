"""CREMA-D (Cao et al. 2014): 7,442 clips of 91 actors, 6 emotions; audio and video.

Owners' layout (``data_dir``)::

    AudioWAV/<clip>.wav         e.g. 1001_DFA_ANG_XX.wav (16 kHz)
    VideoFlash/<clip>.flv       decoded by the preprocessing (ffmpeg, 1 fps)

or frames already extracted: ``frames_dir/<clip>/*.jpg`` (any names; sorted), given as
``frames_dir`` (then no ffmpeg is needed and ``VideoFlash/`` may be absent).

Label: the third field of the clip name (``1001_DFA_ANG_XX`` -> ANG). Classes, alphabetical:
Anger (ANG), Disgust (DIS), Fear (FEA), Happy (HAP), Neutral (NEU), Sad (SAD).
Split: the authors' lists when given (``my_train_cre.txt``/``my_test_cre.txt``: lines
``<clip>.flv <Class>``), else a seeded 10 % test split (the authors' protocol); val is
carved from train. Modalities: ``audio`` (fbank) and ``video`` (3 frames).
"""

from __future__ import annotations

import re
from pathlib import Path

from .errors import DataError
from .media import MediaDataset, make_split
from .record import Record, check_root

NAME = "cremad"
MODALITIES = ["audio", "video"]
EMOTIONS = {
    "ANG": "Anger",
    "DIS": "Disgust",
    "FEA": "Fear",
    "HAP": "Happy",
    "NEU": "Neutral",
    "SAD": "Sad",
}
CLASSES = sorted(EMOTIONS.values())
# seeded 10 % test when there are no split lists; val: 10 % of train
SPLIT_OPTIONS = {"test_fraction": 0.1, "val_fraction": 0.1}
_CLIP = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})$")
HOWTO = (
    "Expected CREMA-D as distributed: <data_dir>/AudioWAV/*.wav and <data_dir>/VideoFlash/*.flv "
    "(or extracted frames in frames_dir/<clip>/). Get it from github.com/CheyneyComputerScience/CREMA-D "
    "(Git LFS; Open Database License) and pass its folder as dataset_config.cremad.data_dir; "
    "see docs/datasets.md."
)


def label_of(clip: str) -> int:
    """Class index of a clip name such as ``1001_DFA_ANG_XX``."""
    m = _CLIP.match(clip)
    if not m or m.group(3) not in EMOTIONS:
        raise DataError(
            f"{NAME}: clip name {clip!r} does not follow <actor>_<sentence>_<emotion>_<level> "
            f"with emotion in {sorted(EMOTIONS)}"
        )
    return CLASSES.index(EMOTIONS[m.group(3)])


def scan(root, frames_dir: str | None = None, modalities=None) -> tuple[list[Record], list[str]]:
    root = check_root(root, NAME, HOWTO)
    modalities = list(modalities or MODALITIES)
    wav_dir, video_dir = root / "AudioWAV", root / "VideoFlash"
    frames_root = Path(frames_dir) if frames_dir else None
    if frames_root is not None and not frames_root.is_dir():
        raise DataError(f"{NAME}: frames_dir not found: {frames_root}")
    if "audio" in modalities and not wav_dir.is_dir():
        raise DataError(f"{NAME}: audio folder not found: {wav_dir}. {HOWTO}")
    if "video" in modalities and frames_root is None and not video_dir.is_dir():
        raise DataError(f"{NAME}: video folder not found: {video_dir} (and no frames_dir). {HOWTO}")
    if wav_dir.is_dir():
        clips = sorted(p.stem for p in wav_dir.glob("*.wav"))
    elif frames_root is not None:
        clips = sorted(p.name for p in frames_root.iterdir() if p.is_dir())
    else:
        clips = sorted(p.stem for p in video_dir.glob("*.flv"))
    records = []
    for clip in clips:
        files = {}
        if wav_dir.is_dir():
            files["wav"] = wav_dir / f"{clip}.wav"
        if frames_root is not None:
            files["frames_dir"] = frames_root / clip
        elif video_dir.is_dir():
            files["video"] = video_dir / f"{clip}.flv"
        records.append(Record(clip, label_of(clip), files))
    return records, list(CLASSES)


def load_split(
    split: str, data_dir, cache_dir, modalities=None, frames_dir=None, **kwargs
) -> MediaDataset:
    modalities = list(modalities or MODALITIES)
    records, classes = scan(data_dir, frames_dir, modalities)
    return make_split(
        NAME,
        records,
        classes,
        split,
        modalities,
        cache_dir,
        howto=HOWTO,
        **{**SPLIT_OPTIONS, **kwargs},
    )
