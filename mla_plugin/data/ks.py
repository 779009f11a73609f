"""Kinetics-Sounds: the Kinetics clips of classes where the sound is informative (audio and
video). There is no official download: the clips are YouTube videos, fetched by each user
with the Kinetics tools, so the clips available (and hence the numbers) vary between copies.

Layout (``data_dir``)::

    <class>/<clip>.mp4                 one folder of clips per class (also .mkv/.webm/.avi);
    <class>/<clip>.wav                 optional: an already extracted audio track
    classes.txt                        optional: the class list, one per line (default:
                                       every class folder); only listed classes are used

or with the owners' split: ``{train,val,test}/<class>/<clip>.mp4``.

Class protocol followed here: the 31-class list used by OGM-GE/PMR (Arandjelovic & Zisserman's
34 Kinetics-Sounds classes as available in Kinetics-400), given as ``classes.txt``; labels are
positions in the alphabetically sorted class list. Split: the owners' folders when present,
else seeded 80/10/10 train/val/test by clip. The MLA authors' KS class list and split were
not released, so results are not directly comparable.

Preprocessing needs ffmpeg: the audio track at 16 kHz mono -> fbank; frames at 1 fps.
Modalities: ``audio`` and ``video``.
"""

from __future__ import annotations

from pathlib import Path

from .errors import DataError
from .media import MediaDataset, make_split
from .record import Record, check_root
from .splits import safe_id
from .validation import read_class_list

NAME = "ks"
MODALITIES = ["audio", "video"]
VIDEO_EXTS = (".mp4", ".mkv", ".webm", ".avi", ".mov")
# seeded 80/10/10 when there is no owners' split (val: 1/9 of the remaining 90 %)
SPLIT_OPTIONS = {"test_fraction": 0.1, "val_fraction": 1 / 9}
HOWTO = (
    "Expected Kinetics-Sounds clips as <data_dir>/<class>/<clip>.mp4 (or <data_dir>/{train,val,test}/"
    "<class>/...) with an optional <data_dir>/classes.txt. The clips come from YouTube through the "
    "Kinetics-400 lists (github.com/cvdfoundation/kinetics-dataset); availability varies. Pass the "
    "folder as dataset_config.ks.data_dir; see docs/datasets.md."
)


def _clips(folder: Path, cls: str, group, classes) -> list[Record]:
    out = []
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() in VIDEO_EXTS:
            files = {"video": p}
            if p.with_suffix(".wav").is_file():
                files["wav"] = p.with_suffix(".wav")
            out.append(
                Record(safe_id(group or "", cls, p.stem), classes.index(cls), files, None, group)
            )
    return out


def scan(root) -> tuple[list[Record], list[str]]:
    root = check_root(root, NAME, HOWTO)
    groups = [g for g in ("train", "val", "test") if (root / g).is_dir()]
    bases = [root / g for g in groups] if groups else [root]
    listed = root / "classes.txt"
    if listed.is_file():
        classes = sorted(read_class_list(listed, f"{NAME} class list"))
    else:
        classes = sorted({d.name for b in bases for d in b.iterdir() if d.is_dir()})
    if not classes:
        raise DataError(f"{NAME}: no class folders in {root}. {HOWTO}")
    records = []
    for base, group in zip(bases, groups or [None], strict=False):
        for c in classes:
            if (base / c).is_dir():
                records += _clips(base / c, c, group, classes)
    return records, classes


def load_split(split: str, data_dir, cache_dir, modalities=None, **kwargs) -> MediaDataset:
    records, classes = scan(data_dir)
    return make_split(
        NAME,
        records,
        classes,
        split,
        list(modalities or MODALITIES),
        cache_dir,
        howto=HOWTO,
        **{**SPLIT_OPTIONS, **kwargs},
    )
