"""IEMOCAP (Busso et al. 2008), 4-class: audio, a face image and the transcript.

Owners' layout (``data_dir`` = ``IEMOCAP_full_release``)::

    Session{1..5}/sentences/wav/<dialog>/<utterance>.wav
    Session{1..5}/dialog/EmoEvaluation/<dialog>.txt     "[start - end]\\t<utterance>\\t<emotion>\\t[v, a, d]"
    Session{1..5}/dialog/transcriptions/<dialog>.txt    "<utterance> [start-end]: <text>"

Face frames are not part of the release: give a folder ``faces_dir/<utterance>/*.jpg``
(face crops, e.g. made with a face detector); the image is the middle one of the sorted
files (the authors took the middle of an unsorted listing).

Labels (the usual 4-class protocol): ``ang`` -> Angry, ``hap`` and ``exc`` -> Happy
(merged), ``neu`` -> Neutral, ``sad`` -> Sad; every other emotion (fru, sur, fea, dis, oth,
xxx) is dropped. This gives 5,531 utterances.
Split: the authors' lists when given (``my_train_iemo.txt``, lines starting with
``<utterance>.mp4``), else a seeded utterance-level 60/20/20 train/val/test split (the
authors' protocol; it ignores sessions and speakers).

Modalities: ``audio`` (fbank), ``image`` (face) and ``text`` (token ids). For the paper's
missing-modality backbone on pre-extracted features use the ``features`` dataset instead.
"""

from __future__ import annotations

import re
from pathlib import Path

from .errors import DataError
from .media import MediaDataset, make_split
from .record import Record, check_root

NAME = "iemocap"
MODALITIES = ["audio", "image", "text"]
EMOTIONS = {"ang": "Angry", "hap": "Happy", "exc": "Happy", "neu": "Neutral", "sad": "Sad"}
CLASSES = sorted(set(EMOTIONS.values()))
# seeded 60/20/20 when there are no split lists (val: 25 % of the remaining 80 %)
SPLIT_OPTIONS = {"test_fraction": 0.2, "val_fraction": 0.25}
_EVAL = re.compile(r"^\[[^\]]*\]\s+(\S+)\s+(\S+)\s+\[")
_TRANS = re.compile(r"^(\S+)\s+\[[^\]]*\]:\s*(.*)$")
HOWTO = (
    "Expected IEMOCAP_full_release as distributed (Session1..5 with sentences/wav, dialog/EmoEvaluation "
    "and dialog/transcriptions) and, for the image modality, face crops in faces_dir/<utterance>/. "
    "Request the release from USC SAIL (sail.usc.edu/iemocap, licence agreement required) and pass its "
    "folder as dataset_config.iemocap.data_dir; see docs/datasets.md."
)


def _read_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8", errors="replace").splitlines()


def scan(root, faces_dir: str | None = None, modalities=None) -> tuple[list[Record], list[str]]:
    root = check_root(root, NAME, HOWTO)
    modalities = list(modalities or MODALITIES)
    sessions = sorted(p for p in root.glob("Session*") if p.is_dir())
    if not sessions:
        raise DataError(f"{NAME}: no Session* folders in {root}. {HOWTO}")
    faces = Path(faces_dir) if faces_dir else None
    if "image" in modalities:
        if faces is None:
            raise DataError(
                f"{NAME}: the image modality needs face crops: set dataset_config.iemocap."
                f"faces_dir (folder of <utterance>/*.jpg), or drop 'image' from the modalities"
            )
        if not faces.is_dir():
            raise DataError(f"{NAME}: faces_dir not found: {faces}")
    records = []
    for session in sessions:
        evals = sorted((session / "dialog" / "EmoEvaluation").glob("*.txt"))
        if not evals:
            raise DataError(
                f"{NAME}: no emotion evaluations in {session / 'dialog' / 'EmoEvaluation'}. {HOWTO}"
            )
        for ev in evals:
            dialog = ev.stem
            texts: dict[str, str] = {}
            trans = session / "dialog" / "transcriptions" / f"{dialog}.txt"
            if "text" in modalities:
                if not trans.is_file():
                    raise DataError(f"{NAME}: transcription not found: {trans}")
                for line in _read_lines(trans):
                    m = _TRANS.match(line.strip())
                    if m:
                        texts[m.group(1)] = m.group(2).strip()
            for n, line in enumerate(_read_lines(ev), 1):
                m = _EVAL.match(line.strip())
                if not m:
                    continue
                utt, emo = m.group(1), m.group(2)
                if emo not in EMOTIONS:
                    continue
                files = {"wav": session / "sentences" / "wav" / dialog / f"{utt}.wav"}
                if faces is not None:
                    files["faces_dir"] = faces / utt
                text = texts.get(utt)
                if "text" in modalities and text is None:
                    raise DataError(
                        f"{NAME}: utterance {utt} ({ev}, line {n}) has no transcription in {trans}"
                    )
                records.append(Record(utt, CLASSES.index(EMOTIONS[emo]), files, text))
    return records, list(CLASSES)


def load_split(
    split: str, data_dir, cache_dir, modalities=None, faces_dir=None, **kwargs
) -> MediaDataset:
    modalities = list(modalities or MODALITIES)
    records, classes = scan(data_dir, faces_dir, modalities)
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
