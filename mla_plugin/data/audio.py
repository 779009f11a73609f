"""Audio helpers: WAV loading (stdlib ``wave``) and the authors' Kaldi fbank.

``load_wav`` uses the standard-library ``wave`` module plus numpy, so it works offline and
without torchaudio's optional I/O backends (torchaudio >= 2.9 delegates ``torchaudio.load``
to torchcodec, which is not installed here). Only integer PCM WAV files are supported.
"""

from __future__ import annotations

import os
import warnings
import wave
from pathlib import Path

import numpy as np
import torch

from .errors import DataError


def _pcm_to_float(raw: bytes, sampwidth: int) -> np.ndarray:
    """Interleaved PCM bytes -> float32 samples in [-1, 1] (torchaudio's normalisation)."""
    if sampwidth == 1:  # 8-bit WAV is unsigned
        return (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    if sampwidth == 2:
        return np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    if sampwidth == 3:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        v = np.where(v >= 1 << 23, v - (1 << 24), v)
        return v.astype(np.float32) / float(1 << 23)
    if sampwidth == 4:
        return (np.frombuffer(raw, dtype="<i4").astype(np.float64) / 2147483648.0).astype(
            np.float32
        )
    raise ValueError(f"unsupported sample width {sampwidth} bytes")


def load_wav(
    path: str | os.PathLike, repaired: list[str] | None = None
) -> tuple[torch.Tensor, int]:
    """Read a PCM WAV file.

    A data chunk shorter than the header's frame count (a file cut short) is read as far
    as its whole frames go; the file's path is then appended to ``repaired`` when given
    (so the caller can count and report it), else a warning names it.

    Returns:
        ``(waveform, sample_rate)`` with ``waveform`` a float32 tensor ``[channels, samples]``
        scaled to [-1, 1], like ``torchaudio.load``.

    Raises:
        DataError: naming the file, when it is missing, unreadable or empty.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError(f"audio file not found: {path}")
    try:
        with wave.open(path, "rb") as w:
            channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
            expected = w.getnframes()
            raw = w.readframes(expected)
        frame_bytes = channels * width
        cut = len(raw) < expected * frame_bytes
        raw = raw[: (len(raw) // frame_bytes) * frame_bytes]
        samples = _pcm_to_float(raw, width)
    except (wave.Error, EOFError, OSError, ValueError) as exc:
        raise DataError(f"cannot read WAV file {path}: {exc}") from exc
    if samples.size == 0:
        raise DataError(f"WAV file {path} contains no samples")
    if cut:
        if repaired is not None:
            repaired.append(path)
        else:
            warnings.warn(
                f"WAV file {path}: data chunk cut short ({len(raw) // frame_bytes} of "
                f"{expected} frames); read as far as it goes",
                stacklevel=2,
            )
    return torch.from_numpy(samples.reshape(-1, channels).T.copy()), int(rate)


def kaldi_fbank(
    waveform: torch.Tensor,
    sample_rate: int,
    num_mel_bins: int = 128,
    target_length: int = 1024,
    frame_shift: float = 10.0,
) -> torch.Tensor:
    """Log-mel filterbank as in the authors' ``extract_fbank.py``.

    The waveform (``[C, T]``; a 1-D tensor is treated as one channel) has its mean removed,
    then ``torchaudio.compliance.kaldi.fbank`` runs on the first channel with htk_compat,
    no energy, a Hanning window, dither 0 and a 25 ms window. The result is zero-padded or
    truncated to ``target_length`` frames. No normalisation is applied. A clip shorter than
    one 25 ms window is zero-padded to one window first.

    Returns:
        float32 tensor ``[target_length, num_mel_bins]``.
    """
    from torchaudio.compliance.kaldi import fbank  # imported lazily: torchaudio is heavy

    wav = waveform if waveform.dim() == 2 else waveform.reshape(1, -1)
    wav = wav.to(torch.float32)
    wav = wav - wav.mean()
    window = int(round(sample_rate * 0.025))  # Kaldi's default 25 ms frame length
    if wav.shape[-1] < window:  # too short for one frame: zero-pad (the authors' code would fail)
        wav = torch.nn.functional.pad(wav, (0, window - wav.shape[-1]))
    feats = fbank(
        wav,
        htk_compat=True,
        sample_frequency=float(sample_rate),
        use_energy=False,
        window_type="hanning",
        num_mel_bins=num_mel_bins,
        dither=0.0,
        frame_shift=frame_shift,
    )
    n = feats.shape[0]
    if n < target_length:
        feats = torch.nn.functional.pad(feats, (0, 0, 0, target_length - n))
    return feats[:target_length].contiguous()


def compute_fbank(wav_path: Path, mel_bins: int = 128, target_length: int = 1024) -> np.ndarray:
    """Kaldi fbank of a WAV file, as in the authors' ``extract_fbank.py`` (see
    :func:`kaldi_fbank`); raises DataError naming bad files."""
    wav, sr = load_wav(wav_path)
    fb = kaldi_fbank(wav, sr, num_mel_bins=mel_bins, target_length=target_length).numpy()
    if not np.isfinite(fb).all():
        raise DataError(f"fbank of {wav_path} has NaN/inf values")
    return fb.astype(np.float32)


def wav_format(path: str | os.PathLike) -> tuple[int, int] | None:
    """``(sample_rate, channels)`` from a WAV file's header; None when it cannot be read
    (:func:`load_wav` names such a file when it is loaded)."""
    try:
        with wave.open(os.fspath(path), "rb") as w:
            return int(w.getframerate()), int(w.getnchannels())
    except (wave.Error, EOFError, OSError):
        return None


def _describe(fmt: tuple[int, int]) -> str:
    rate, channels = fmt
    return f"{rate} Hz " + {1: "mono", 2: "stereo"}.get(channels, f"{channels} channels")


def check_wav_formats(paths, where: str) -> None:
    """Refuse WAV files of mixed sample rates or channel counts (:class:`DataError` naming
    ``where``, each format's count and a file of it): their fbank frames would span other
    times and frequencies, so the features would not be comparable.  The plugin refuses
    rather than resamples, so no clip is silently changed."""
    groups: dict[tuple[int, int], list[str]] = {}
    for path in paths:
        fmt = wav_format(path)
        if fmt is not None:
            groups.setdefault(fmt, []).append(os.fspath(path))
    if len(groups) > 1:
        ranked = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
        shown = "; ".join(
            f"{len(files)} at {_describe(fmt)} (e.g. {files[0]})" for fmt, files in ranked
        )
        rate, channels = ranked[0][0]
        raise DataError(
            f"{where}: the WAV files differ in sample rate or channel count: {shown}. Their "
            "fbank features would not be comparable; convert them to one format first "
            f"(e.g. ffmpeg -i in.wav -ar {rate} -ac {channels} out.wav)"
        )
