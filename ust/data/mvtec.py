"""MVTec AD in its original folder layout.

Introduced in the book's chapter *Introduction* (anomaly segmentation).

MVTec AD (Bergmann et al., CVPR 2019; https://www.mvtec.com/company/research/datasets/mvtec-ad)
is the benchmark of the paper's Sec. 4.2. It is not downloaded by ``ust``
(its licence asks users to fetch it themselves); once extracted, a
category looks like::

    <root>/<category>/train/good/000.png
    <root>/<category>/test/good/000.png
    <root>/<category>/test/<defect>/000.png
    <root>/<category>/ground_truth/<defect>/000_mask.png
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .datasets import _size_pair, data_roots, preprocess

__all__ = ["MVTEC_URL", "MVTecData", "mvtec_categories", "load_mvtec"]

MVTEC_URL = "https://www.mvtec.com/company/research/datasets/mvtec-ad"
_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


@dataclass(eq=False)
class MVTecData:
    """One MVTec AD category, ready for a network.

    Attributes:
        train: float32 ``(N, C, H, W)`` in [0, 1], the defect-free training
            images.
        test: float32 ``(M, C, H, W)`` in [0, 1], the test images.
        test_labels: int64 ``(M,)``: 0 good, 1 defective.
        test_defects: ``M`` defect type names (``"good"`` for good images).
        masks: bool ``(M, H, W)``, True on defective pixels; all False for
            good images.
        test_files: ``M`` test image paths.
        category: E.g. ``"carpet"``.
        description: Where the data came from and how it was prepared.
    """

    train: torch.Tensor
    test: torch.Tensor
    test_labels: torch.Tensor
    test_defects: tuple[str, ...]
    masks: torch.Tensor
    test_files: tuple[str, ...]
    category: str
    description: str

    def __repr__(self) -> str:
        return (f"MVTecData(category={self.category!r}, train={tuple(self.train.shape)}, "
                f"test={tuple(self.test.shape)}, defective={int(self.test_labels.sum())}, "
                f"defect_types={sorted(set(self.test_defects) - {'good'})})")


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in _EXTENSIONS and p.is_file())


def mvtec_categories(root: str | os.PathLike) -> list[str]:
    """Categories found under ``root``: folders with a ``train/good`` subfolder.

    Args:
        root: The folder that holds the categories.

    Returns:
        Sorted category names (empty if there are none).
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "train" / "good").is_dir())


def _read(path: Path, mode: str | None) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        if mode is not None:
            img = img.convert(mode)
        elif img.mode not in ("L", "RGB"):
            img = img.convert("RGB")
        x = np.asarray(img, dtype=np.uint8)
    return x[..., None] if x.ndim == 2 else x


def _to_tensor(path: Path, mode: str | None, size) -> torch.Tensor:
    return preprocess(_read(path, mode)[None], image_size=size)[0]


def _stack(tensors: list[torch.Tensor], what: str) -> torch.Tensor:
    shapes = sorted({tuple(t.shape) for t in tensors})
    if len(shapes) > 1:
        raise ValueError(f"the {what} images have different shapes {shapes}; pass image_size=... to resize "
                         "them to one size.")
    return torch.stack(tensors)


def load_mvtec(root: str | os.PathLike | None, category: str, image_size: int | tuple[int, int] | None = None,
               channels: int | None = 3) -> MVTecData:
    """Load one category of MVTec AD from its original folder layout.

    Images go through :func:`~ust.data.preprocess` one at a time (float32
    in [0, 1], bilinear antialiased resize to ``image_size``); masks are
    resized with nearest-neighbour sampling (``mode="nearest-exact"``,
    pixel-centre aligned) so that they stay binary and aligned with the
    images. Grayscale categories (grid, screw, zipper) become three equal
    channels with ``channels=3``.

    Args:
        root: The folder holding the categories (``<root>/<category>/train/good``),
            or ``None`` for the data roots (:func:`~ust.data.data_roots`),
            each searched for ``<data root>/<category>`` and
            ``<data root>/mvtec_anomaly_detection/<category>``.
        category: E.g. ``"carpet"``.
        image_size: Output size (int: square), or ``None`` for the files'
            size.
        channels: 3 (RGB), 1 (gray) or ``None`` (as stored).

    Returns:
        :class:`MVTecData`.

    Raises:
        ValueError: For a missing folder or category (listing the
            categories found), or a defective test image without its mask.
    """
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be 1, 3 or None; got {channels!r}.")
    size = _size_pair(image_size)
    mode = {None: None, 1: "L", 3: "RGB"}[channels]
    if root is None:
        candidates = [r / sub for r in data_roots() for sub in ("", "mvtec_anomaly_detection")]
        found = [r for r in candidates if (r / category / "train" / "good").is_dir()]
        where = ", ".join(str(c) for c in candidates)
        if not found:
            raise ValueError(f"MVTec AD category {category!r} not found under {where}. Download MVTec AD from "
                             f"{MVTEC_URL}, extract it and pass root='/path/to/mvtec_anomaly_detection' (or put it "
                             "under a data root, see ust.data.data_roots).")
        root = found[0]
    root = Path(root).expanduser()
    if not root.is_dir():
        raise ValueError(f"MVTec AD folder {root} does not exist. Download MVTec AD from {MVTEC_URL} and pass the "
                         f"extracted folder, which holds one subfolder per category (e.g. {root}/carpet/train/good).")
    base = root / category
    if not (base / "train" / "good").is_dir() or not (base / "test").is_dir():
        found = mvtec_categories(root)
        listed = ", ".join(found) if found else "none"
        raise ValueError(f"no MVTec AD category {category!r} in {root} (expected {base}/train/good and {base}/test). "
                         f"Categories found there: {listed}.")
    train_files = _images_in(base / "train" / "good")
    if not train_files:
        raise ValueError(f"{base}/train/good holds no images.")
    train = _stack([_to_tensor(p, mode, size) for p in train_files], "training")

    images, labels, defects, masks, files = [], [], [], [], []
    for defect_dir in sorted(p for p in (base / "test").iterdir() if p.is_dir()):
        defect = defect_dir.name
        for path in _images_in(defect_dir):
            x = _read(path, mode)
            if defect == "good":
                m = np.zeros(x.shape[:2], dtype=bool)
            else:
                mask_path = base / "ground_truth" / defect / f"{path.stem}_mask.png"
                if not mask_path.is_file():
                    raise ValueError(f"defective test image {path} has no mask: expected {mask_path}. Restore the "
                                     "ground_truth folder from the original MVTec AD archive.")
                m = _read(mask_path, "L")[..., 0] > 0
                if m.shape != x.shape[:2]:
                    raise ValueError(f"mask {mask_path} is {m.shape[1]}x{m.shape[0]} but its image {path} is "
                                     f"{x.shape[1]}x{x.shape[0]}; they must match.")
            images.append(preprocess(x[None], image_size=size)[0])
            mt = torch.from_numpy(m)
            if size is not None and size != tuple(mt.shape):
                mt = F.interpolate(mt[None, None].float(), size=size, mode="nearest-exact")[0, 0] > 0.5
            masks.append(mt)
            labels.append(int(defect != "good"))
            defects.append(defect)
            files.append(str(path))
    if not images:
        raise ValueError(f"{base}/test holds no images (expected subfolders good/ and one per defect type).")
    test = _stack(images, "test")
    if test.shape[1:] != train.shape[1:]:
        raise ValueError(f"training images {tuple(train.shape[1:])} and test images {tuple(test.shape[1:])} "
                         "differ; pass image_size=... and channels=... to make them match.")
    labels_t = torch.tensor(labels, dtype=torch.int64)
    n_bad = int(labels_t.sum())
    resize = f"resized to {size[0]}x{size[1]}" if size else "at their original size"
    description = (f"MVTec AD category {category!r} from {base}: {len(train_files)} defect-free training images, "
                   f"{len(files)} test images ({len(files) - n_bad} good, {n_bad} defective of "
                   f"{len(set(defects) - {'good'})} types), {resize}, {train.shape[1]} channel(s)")
    return MVTecData(train, test, labels_t, tuple(defects), torch.stack(masks), tuple(files), category, description)
