"""Images: loading (RGB, with errors naming the sample) and the authors' transforms.

Nothing here imports MMF.
"""

from __future__ import annotations

from pathlib import Path

from .errors import DataError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def load_image(path: Path, sample_id: str = ""):
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except FileNotFoundError as exc:
        raise DataError(f"sample {sample_id}: image file not found: {path}") from exc
    except Exception as exc:  # noqa: BLE001 - PIL raises many types for broken files
        raise DataError(f"sample {sample_id}: cannot read image {path}: {exc}") from exc


def image_transform(train: bool, size: int = 224):
    """Train: RandomResizedCrop + horizontal flip; eval: Resize((size, size)); both with
    ImageNet normalisation (the authors' frame transform)."""
    from torchvision import transforms as T

    norm = [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    if train:
        return T.Compose([T.RandomResizedCrop(size), T.RandomHorizontalFlip()] + norm)
    return T.Compose([T.Resize((size, size))] + norm)
