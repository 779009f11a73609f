"""Video through ffmpeg: 1-fps frames and audio tracks, and the authors' frame selection.

Nothing here imports MMF.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .errors import DataError
from .images import IMAGE_EXTS


def list_frames(folder: Path) -> list[Path]:
    """Image files of a frames folder, **sorted** by name (the authors' code did not sort)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS)


def select_frames(frames: Sequence[Path], num: int = 3) -> list[Path]:
    """The authors' selection: indices ``int(n / num) * i`` for ``i < num`` of the sorted frames
    (with fewer than ``num`` frames the indices are 0, so the first frame repeats)."""
    n = len(frames)
    if n == 0:
        return []
    return [frames[min(int(n / num) * i, n - 1)] for i in range(num)]


def ffmpeg_binary() -> str:
    exe = os.environ.get("MLA_FFMPEG") or shutil.which("ffmpeg")
    if not exe:
        raise DataError(
            "ffmpeg is needed to decode video (frames at 1 fps, audio tracks) but was not found; "
            "install it (e.g. `apt-get install ffmpeg`) or set MLA_FFMPEG, or give frames/WAVs "
            "that are already extracted (see docs/datasets.md)"
        )
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
            [
                exe,
                "-nostdin",
                "-loglevel",
                "error",
                "-i",
                str(video),
                "-vf",
                f"fps={fps}",
                "-q:v",
                "2",
                str(tmp / "frame_%05d.jpg"),
            ],
            capture_output=True,
            text=True,
        )
        n = len(list_frames(tmp))
        if proc.returncode != 0 or n == 0:
            raise DataError(
                f"cannot extract frames from {video}: {proc.stderr.strip()[-300:] or 'no frames'}"
            )
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
        [
            exe,
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-i",
            str(video),
            "-vn",
            "-ac",
            "1",
            "-ar",
            str(sample_rate),
            "-acodec",
            "pcm_s16le",
            str(tmp),
        ],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        raise DataError(f"cannot extract the audio of {video}: {proc.stderr.strip()[-300:]}")
    os.replace(tmp, wav_out)
