"""Random patches of natural images for pretraining the teacher.

Introduced in the book's chapter *Teacher losses*.

Bergmann et al. (2020), Sec. 3.1, pretrain the teacher on patches of
ImageNet. For the metric-learning loss a triplet is an anchor patch ``p``,
a positive ``p+`` ("a small random translation of p plus Gaussian noise")
and a negative ``p-`` (a patch of another, randomly chosen image).

Choices documented here: the translation is uniform in ``[-max_shift,
max_shift]`` pixels per axis (default 4), the noise has standard deviation
``noise_std = 0.05`` in ``[0, 1]`` intensity units and is clipped to
``[0, 1]``. Images smaller than ``p + 2 max_shift`` are all upscaled
(bilinear) by one common factor so that ``p = 65`` crops exist in 64 x 64
Tiny-ImageNet photos.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["PatchSampler", "load_natural_images"]

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def load_natural_images(source: str | Path | np.ndarray, *, image_size: int = 128,
                        max_images: int | None = None, seed: int = 0) -> np.ndarray:
    """Natural images for teacher pretraining, as uint8 ``(N, H, W, 3)``.

    Args:
        source: An arrays file (``.npz`` with ``x_train``, as written by the
            workplace's ``unpack.py`` or :func:`ust.data.load_dataset`'s
            format; ``images`` is accepted too), a folder of image files
            (searched recursively; each is centre-cropped to a square and
            resized to ``image_size``), or an array already in memory.
        image_size: Side of the squares made from a folder's images.
        max_images: Keep a random subset of this many (seeded).
        seed: Seed for that subset.

    Returns:
        ``(N, H, W, 3)`` uint8 array (grayscale sources repeated to RGB).

    Raises:
        ValueError: Missing path, empty folder, or an arrays file without images.
    """
    if isinstance(source, np.ndarray):
        images = source
    else:
        path = Path(source).expanduser()
        if not path.exists():
            raise ValueError(f"natural images not found at {path}: pass an arrays file (.npz with x_train) or a "
                             "folder of image files (e.g. ImageNet's train folder).")
        if path.is_dir():
            images = _load_folder(path, image_size)
        else:
            with np.load(path, allow_pickle=False) as archive:
                key = next((k for k in ("x_train", "images") if k in archive.files), None)
                if key is None:
                    raise ValueError(f"{path} has no 'x_train' or 'images' array (it has {archive.files}). "
                                     "JPEG-byte archives must be decoded first with unpack.py.")
                images = archive[key]
    if images.dtype != np.uint8 or images.ndim not in (3, 4):
        raise ValueError(f"natural images must be uint8 (N, H, W) or (N, H, W, C); got {images.dtype} "
                         f"{images.shape}.")
    if images.ndim == 3:
        images = images[..., None]
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    if max_images is not None and max_images < len(images):
        keep = np.sort(np.random.default_rng(seed).choice(len(images), max_images, replace=False))
        images = images[keep]
    return images


def _load_folder(path: Path, image_size: int) -> np.ndarray:
    from PIL import Image

    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in _IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"no image files ({', '.join(sorted(_IMAGE_SUFFIXES))}) found under {path}.")
    out = np.empty((len(files), image_size, image_size, 3), np.uint8)
    for i, file in enumerate(files):
        with Image.open(file) as im:
            im = im.convert("RGB")
            side = min(im.size)
            left, top = (im.width - side) // 2, (im.height - side) // 2
            im = im.crop((left, top, left + side, top + side)).resize((image_size, image_size), Image.BILINEAR)
            out[i] = np.asarray(im)
    return out


class PatchSampler:
    """Draws random ``p x p`` patches and triplets from a set of natural images.

    Args:
        images: uint8 ``(N, H, W, 3)`` (see :func:`load_natural_images`), or a
            float tensor ``(N, 3, H, W)`` in ``[0, 1]``.
        patch_size: ``p``.
        max_shift: Largest translation of a positive, in pixels.
        noise_std: Standard deviation of the positive's Gaussian noise.
        seed: Seed of the sampler's own random generator; two samplers with
            the same seed draw the same patches.

    Attributes:
        images (Tensor): uint8 ``(N, 3, H, W)``, upscaled if needed.
        scale (float): The common upscaling factor (1.0 if none).

    Raises:
        ValueError: Fewer than two images, or a bad shape.
    """

    def __init__(self, images: np.ndarray | torch.Tensor, patch_size: int, *, max_shift: int = 4,
                 noise_std: float = 0.05, seed: int = 0) -> None:
        if isinstance(images, np.ndarray):
            if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
                raise ValueError(f"images must be uint8 (N, H, W, 3); got {images.dtype} {images.shape}. "
                                 "Use ust.data.load_natural_images(...) to load them.")
            tensor = torch.from_numpy(images).permute(0, 3, 1, 2)
        elif isinstance(images, torch.Tensor) and images.dim() == 4 and images.shape[1] == 3:
            tensor = images if images.dtype == torch.uint8 else (images.clamp(0, 1) * 255).round().to(torch.uint8)
        else:
            raise ValueError("images must be a uint8 array (N, H, W, 3) or a tensor (N, 3, H, W).")
        if tensor.shape[0] < 2:
            raise ValueError("PatchSampler needs at least two images (negatives come from another image).")
        if max_shift < 0 or noise_std < 0:
            raise ValueError(f"max_shift and noise_std must be >= 0; got {max_shift}, {noise_std}.")
        self.patch_size = int(patch_size)
        self.max_shift = int(max_shift)
        self.noise_std = float(noise_std)
        need = self.patch_size + 2 * self.max_shift
        smallest = min(tensor.shape[-2:])
        self.scale = 1.0
        if smallest < need:
            self.scale = need / smallest
            size = [math.ceil(s * self.scale) for s in tensor.shape[-2:]]
            chunks = [F.interpolate(c.float(), size=size, mode="bilinear", align_corners=False).round().clamp(0, 255)
                      .to(torch.uint8) for c in tensor.split(1024)]
            tensor = torch.cat(chunks)
        self.images = tensor.contiguous()
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return self.images.shape[0]

    def _randint(self, low: int, high: int, n: int) -> torch.Tensor:
        return torch.randint(low, high, (n,), generator=self.generator)

    def _crop(self, index: torch.Tensor, top: torch.Tensor, left: torch.Tensor) -> torch.Tensor:
        p = self.patch_size
        crops = torch.stack([self.images[i, :, y:y + p, x:x + p] for i, y, x in
                             zip(index.tolist(), top.tolist(), left.tolist())])
        return crops.float() / 255.0

    def _positions(self, n: int, margin: int) -> tuple[torch.Tensor, torch.Tensor]:
        height, width = self.images.shape[-2:]
        p = self.patch_size
        top = self._randint(margin, height - p - margin + 1, n)
        left = self._randint(margin, width - p - margin + 1, n)
        return top, left

    def sample(self, n: int) -> torch.Tensor:
        """``n`` random patches: ``(n, 3, p, p)`` floats in ``[0, 1]``."""
        index = self._randint(0, len(self), n)
        return self._crop(index, *self._positions(n, 0))

    def triplets(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``n`` triplets for the metric-learning loss (Sec. 3.1).

        Returns:
            ``(anchor, positive, negative)``, each ``(n, 3, p, p)``: the
            positive is the anchor's crop moved by up to ``max_shift``
            pixels plus Gaussian noise, the negative a crop of another image.
        """
        index = self._randint(0, len(self), n)
        top, left = self._positions(n, self.max_shift)
        anchor = self._crop(index, top, left)
        shift = self._randint(-self.max_shift, self.max_shift + 1, 2 * n)
        positive = self._crop(index, top + shift[:n], left + shift[n:])
        positive = (positive + self.noise_std * torch.randn(positive.shape, generator=self.generator)).clamp(0, 1)
        other = (index + self._randint(1, len(self), n)) % len(self)
        negative = self._crop(other, *self._positions(n, 0))
        return anchor, positive, negative
