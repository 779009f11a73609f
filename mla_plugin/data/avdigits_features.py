"""``avdigits`` as pretrained features: the same spoken/handwritten digit pairs, each side
through a frozen pretrained encoder, written in the ``features`` format.

Usage::

    python -m mla_plugin.data.avdigits_features --out DIR [--fsdd DIR] [--seed 0]
        [--val-fraction 0.1] [--max-per-class N] [--image-size 224] [--clip-seconds 1.5]

then train or compare on it with the ``features`` dataset::

    mmf_run config=projects/mla/configs/features.yaml dataset_config.features.data_dir=DIR
    mla-leaderboard --datasets features --set dataset_config.features.data_dir=DIR ...

The pairs, splits and class order are avdigits' own
(:meth:`~mla_plugin.data.avdigits.AVDigitsDataset.pairing`: FSDD takes 0-4 test, a seeded
val carve; disjoint per-class image pools).  ``x_audio`` is the 192-d pooled speech embedding
and ``x_image`` the 1280-d EfficientNet-Lite0 feature (:mod:`mla_plugin.data.pretrained`).
``DIR`` also gets ``classes.txt``, ``provenance.npz`` (per split: the audio file, speaker,
take and load_digits() row of every sample) and ``manifest.json`` (the parameters, the
encoders' versions and the sha256 of every file), written last: a build whose manifest
matches the requested one is complete and is not redone; any other folder content is
rebuilt (files written atomically).

Licences: FSDD recordings CC BY-SA 4.0; sklearn's digits (UCI) CC BY 4.0; the speech
embedding models bundled in openwakeword 0.5.1 CC BY-NC-SA 4.0 (non-commercial);
EfficientNet-Lite0 weights Apache 2.0.  The features inherit these terms.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np

from ..utils.io import atomic_savez, atomic_write_json, atomic_write_text
from .audio import load_wav
from .avdigits import AVDigitsDataset
from .errors import DataError

FORMAT_VERSION = 1
SPLITS = ("train", "val", "test")
LICENCES = {
    "audio": "FSDD recordings, CC BY-SA 4.0 (credit the FSDD contributors)",
    "image": "scikit-learn digits (UCI optical recognition of handwritten digits), CC BY 4.0",
    "speech_encoder": "openwakeword 0.5.1 bundled speech-embedding ONNX models, CC BY-NC-SA 4.0",
    "image_encoder": "EfficientNet-Lite0 ImageNet weights, Apache 2.0",
}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsdd_listing_digest(rec_dir: Path, names: list[str]) -> str:
    """The recordings the build reads, by name, size and content."""
    h = hashlib.sha256()
    for name in sorted(names):
        h.update(f"{name}\0{_sha256(rec_dir / name)}\n".encode())
    return h.hexdigest()


def requested(fsdd_dir, seed, val_fraction, max_per_class, image_size, clip_seconds) -> dict:
    """What a build is made of, without the encoders (see :func:`build`)."""
    return {
        "format_version": FORMAT_VERSION,
        "fsdd_dir": str(Path(fsdd_dir).resolve()) if fsdd_dir is not None else None,
        "seed": int(seed),
        "val_fraction": float(val_fraction),
        "max_per_class": None if max_per_class is None else int(max_per_class),
        "image_size": int(image_size),
        "clip_seconds": float(clip_seconds),
    }


def build(
    out_dir: str | os.PathLike,
    fsdd_dir: str | os.PathLike | None = None,
    seed: int = 0,
    val_fraction: float = 0.1,
    max_per_class: int | None = None,
    image_size: int = 224,
    clip_seconds: float = 1.5,
    log=print,
) -> Path:
    """Write ``{train,val,test}.npz``, ``classes.txt``, ``provenance.npz`` and
    ``manifest.json`` into ``out_dir``; skip the work when its manifest already matches."""
    from .pretrained import ImageEmbedder, SpeechEmbedder

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out} exists and is not a folder")
    want = requested(fsdd_dir, seed, val_fraction, max_per_class, image_size, clip_seconds)
    pairs = {
        s: AVDigitsDataset.pairing(s, fsdd_dir, seed, val_fraction, max_per_class) for s in SPLITS
    }
    rec_dir = pairs["train"][0]
    used = sorted({c[0] for s in SPLITS for c in pairs[s][2]})
    want["fsdd_dir"] = str(rec_dir.resolve())
    want["fsdd_digest"] = _fsdd_listing_digest(rec_dir, used)
    speech, image = SpeechEmbedder(clip_seconds), ImageEmbedder(image_size)
    want["encoders"] = {"audio": speech.version, "image": image.version}
    manifest = out / "manifest.json"
    if manifest.is_file():
        try:
            old = json.loads(manifest.read_text())
        except ValueError:
            old = {}
        files = old.get("files", {})
        if (
            old.get("request") == want
            and files
            and all((out / f).is_file() and _sha256(out / f) == d for f, d in files.items())
        ):
            log(f"avdigits features in {out} are up to date ({manifest})")
            return out
        log(f"rebuilding {out}: its manifest does not match this build's parameters or files")
    out.mkdir(parents=True, exist_ok=True)
    if manifest.exists():
        manifest.unlink()  # the marker goes first: a half-rebuilt folder is never "complete"

    digits, _ = AVDigitsDataset._load_digits()
    provenance = {}
    for split in SPLITS:
        _, _, clips, image_rows = pairs[split]
        log(f"{split}: embedding {len(clips)} clips and their paired images")
        waves = []
        for name, *_ in clips:
            wave, rate = load_wav(rec_dir / name)
            waves.append((wave.mean(0).numpy(), rate))
        x_audio = speech(waves)
        rows, inverse = np.unique(image_rows, return_inverse=True)
        x_image = image(digits[rows])[inverse]
        atomic_savez(
            out / f"{split}.npz",
            y=np.array([c[1] for c in clips], dtype=np.int64),
            x_audio=x_audio,
            x_image=x_image,
        )
        provenance[f"{split}_audio_file"] = np.array([c[0] for c in clips], dtype=str)
        provenance[f"{split}_speaker"] = np.array([c[2] for c in clips], dtype=str)
        provenance[f"{split}_take"] = np.array([c[3] for c in clips], dtype=np.int64)
        provenance[f"{split}_digits_row"] = np.asarray(image_rows, dtype=np.int64)
    atomic_savez(out / "provenance.npz", **provenance)
    atomic_write_text("".join(f"{d}\n" for d in range(10)), str(out / "classes.txt"))
    files = ["train.npz", "val.npz", "test.npz", "classes.txt", "provenance.npz"]
    atomic_write_json(
        {
            "request": want,
            "licences": LICENCES,
            "files": {f: _sha256(out / f) for f in files},
        },
        str(manifest),
    )
    log(f"wrote avdigits features to {out}")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m mla_plugin.data.avdigits_features",
        description="Build avdigits as pretrained features (the `features` dataset format).",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--fsdd", default=None, help="FSDD folder (default: ../shared/data/fsdd)")
    p.add_argument("--seed", type=int, default=0, help="the data seed (val carve, pairing)")
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--max-per-class", type=int, default=None, help="subsample for a quick build")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--clip-seconds", type=float, default=1.5)
    a = p.parse_args(argv)
    if a.max_per_class is not None and a.max_per_class < 1:
        p.error(f"--max-per-class must be >= 1, got {a.max_per_class}")
    if not 0.0 < a.val_fraction < 1.0:
        p.error(f"--val-fraction must be in (0, 1), got {a.val_fraction}")
    try:
        build(a.out, a.fsdd, a.seed, a.val_fraction, a.max_per_class, a.image_size, a.clip_seconds)
    except (DataError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
