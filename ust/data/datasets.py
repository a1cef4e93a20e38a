"""Image datasets and the one-class protocol.

Introduced in the book's chapter *Introduction*.

Where the data comes from
-------------------------
:func:`load_dataset` reads MNIST and CIFAR-10 from *data roots*
(:func:`data_roots`: the ``root`` argument, else the ``UST_DATA`` environment
variable, else ``./data``), in torchvision's own folder layout or as a plain
arrays file ``<root>/<name>.npz``. Missing data is downloaded by torchvision
into the first root when that works; when it does not (no internet), one
:class:`DataUnavailableError` lists every way to supply the data. The
embedded set ``"digits"`` (scikit-learn's 1,797 real 8x8 handwritten digits,
brought to MNIST's 28x28 layout) needs no files at all, and
:func:`load_mnist_or_digits` falls back to it with a printed notice.

Conventions
-----------
Images are stored as uint8 arrays ``(N, H, W, C)`` with ``C`` in {1, 3} and
labels as int64 ``(N,)``. Networks receive float32 tensors ``(B, C, H, W)``
in [0, 1], made by :func:`preprocess`.

One-class protocol
------------------
Bergmann et al. (2020), Sec. 4.1 and Table 1, following Deep SVDD (Ruff et
al., ICML 2018): one class of MNIST or CIFAR-10 is declared *normal*; models
train on the training images of that class only and are evaluated on the
whole test split, where every image of another class is an anomaly
(:func:`one_class_split`).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "DATASET_NAMES",
    "DataUnavailableError",
    "data_roots",
    "ImageArrays",
    "DatasetSplits",
    "load_dataset",
    "load_mnist_or_digits",
    "OneClassData",
    "one_class_split",
    "resize_images",
    "preprocess",
    "stratified_subset",
]

#: Names :func:`load_dataset` accepts besides a path to an arrays file.
DATASET_NAMES = ("mnist", "cifar10", "digits")

#: Keys of an arrays file (``classes`` is optional).
ARRAY_KEYS = ("x_train", "y_train", "x_test", "y_test")

_DEFAULT_ROOT = "./data"
_MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_CIFAR_FOLDER = "cifar-10-batches-py"
_CIFAR_FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
                "test_batch", "batches.meta")
_PRETTY = {"mnist": "MNIST", "cifar10": "CIFAR-10", "digits": "digits"}
# Rec. ITU-R BT.601 luma, as PIL's convert("L") and torchvision's rgb_to_grayscale.
_LUMA = (0.299, 0.587, 0.114)


class DataUnavailableError(ValueError):
    """A dataset is neither on disk nor downloadable here.

    The message lists every way to supply the data; :attr:`reason` is a
    one-line summary (e.g. for a notice).
    """

    def __init__(self, message: str, reason: str = ""):
        super().__init__(message)
        self.reason = reason or message


# --------------------------------------------------------------------------- roots

def _split_roots(value: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    if isinstance(value, (str, os.PathLike)):
        parts = [value] if isinstance(value, os.PathLike) else str(value).split(os.pathsep)
    else:
        parts = list(value)
    return [Path(os.fspath(p)).expanduser() for p in parts if str(p).strip()]


def _roots_and_origin(root=None) -> tuple[list[Path], str]:
    if root is not None:
        roots, origin = _split_roots(root), "the root argument"
    elif os.environ.get("UST_DATA", "").strip():
        roots, origin = _split_roots(os.environ["UST_DATA"]), "the UST_DATA environment variable"
    else:
        roots, origin = [], ""
    if not roots:
        roots, origin = [Path(_DEFAULT_ROOT)], f"the default {_DEFAULT_ROOT} (UST_DATA is not set)"
    return roots, origin


def data_roots(root: str | os.PathLike | Sequence[str | os.PathLike] | None = None) -> list[Path]:
    """The folders datasets are read from, in search order.

    1. ``root`` if given: one path, a sequence of paths, or a string of
       paths separated by :data:`os.pathsep` (``:`` on Linux and macOS,
       ``;`` on Windows);
    2. else the ``UST_DATA`` environment variable, in the same format, e.g.
       ``UST_DATA=../shared/datasets:~/.cache/ust``;
    3. else ``./data`` (relative to the working directory).

    ``~`` is expanded; empty entries are ignored. Downloads go to the
    *first* root.

    Args:
        root: Explicit root(s), or ``None``.

    Returns:
        At least one path; the folders need not exist.
    """
    return _roots_and_origin(root)[0]


# --------------------------------------------------------------------------- containers

@dataclass(eq=False)
class ImageArrays:
    """One split of an image dataset, as uint8 arrays.

    Attributes:
        images: uint8 ``(N, H, W, C)`` with ``C`` in {1, 3}, values 0..255.
        labels: int64 ``(N,)``, each in ``range(len(classes))`` (other
            integer dtypes are converted).
        classes: Class names in label order, e.g. ``("0", ..., "9")``.
        name: Short dataset name, e.g. ``"mnist"``.
        description: Where the data came from, in one sentence.
    """

    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    name: str
    description: str = ""

    def __post_init__(self):
        x, y = self.images, self.labels
        if not isinstance(x, np.ndarray) or x.dtype != np.uint8:
            what = type(x).__name__ if not isinstance(x, np.ndarray) else f"dtype {x.dtype}"
            raise ValueError(f"{self.name}: images must be a uint8 numpy array (N, H, W, C); got {what}. "
                             "Convert floats in [0, 1] with (x * 255).round().astype(np.uint8).")
        if x.ndim != 4 or x.shape[-1] not in (1, 3):
            hint = " For grayscale (N, H, W) use images[..., None]." if x.ndim == 3 else ""
            raise ValueError(f"{self.name}: images must have shape (N, H, W, C) with C = 1 or 3; "
                             f"got {x.shape}.{hint}")
        y = np.asarray(y)
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"{self.name}: labels must be a 1-D integer array; got dtype {y.dtype}, "
                             f"shape {y.shape}.")
        if len(y) != len(x):
            raise ValueError(f"{self.name}: {len(x)} images but {len(y)} labels; they must match.")
        self.labels = y.astype(np.int64, copy=False)
        self.classes = tuple(str(c) for c in self.classes)
        if len(y) and (y.min() < 0 or y.max() >= len(self.classes)):
            raise ValueError(f"{self.name}: labels must lie in 0..{len(self.classes) - 1} for the "
                             f"{len(self.classes)} classes {self.classes}; got {y.min()}..{y.max()}.")

    def __len__(self) -> int:
        return len(self.images)

    def __repr__(self) -> str:
        return (f"ImageArrays(name={self.name!r}, images={self.images.shape} uint8, "
                f"classes={len(self.classes)}, description={self.description!r})")


@dataclass(eq=False)
class DatasetSplits:
    """Training and test split of one dataset.

    Attributes:
        train: The training split.
        test: The test split (same classes, channels and image size).
        name: Short dataset name, e.g. ``"mnist"``, ``"digits"``.
        stand_in_for: Name of the dataset this one replaces, e.g.
            ``"mnist"`` when :func:`load_mnist_or_digits` fell back to the
            digits; ``None`` otherwise.
    """

    train: ImageArrays
    test: ImageArrays
    name: str
    stand_in_for: str | None = None

    def __post_init__(self):
        if self.train.classes != self.test.classes:
            raise ValueError(f"{self.name}: train and test splits name different classes "
                             f"({self.train.classes} vs {self.test.classes}).")
        if self.train.images.shape[1:] != self.test.images.shape[1:]:
            raise ValueError(f"{self.name}: train images {self.train.images.shape[1:]} and test images "
                             f"{self.test.images.shape[1:]} must have the same (H, W, C).")

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names in label order."""
        return self.train.classes

    @property
    def description(self) -> str:
        """Both splits' descriptions, plus the stand-in note."""
        text = f"{self.train.description}; {self.test.description}"
        if self.stand_in_for:
            text += f". It stands in for {_PRETTY.get(self.stand_in_for, self.stand_in_for)}"
        return text

    def __repr__(self) -> str:
        stand_in = f", stand_in_for={self.stand_in_for!r}" if self.stand_in_for else ""
        return (f"DatasetSplits(name={self.name!r}, train={self.train.images.shape}, "
                f"test={self.test.images.shape}, classes={self.classes}{stand_in})")


# --------------------------------------------------------------------------- readers

def _with_channels(x: np.ndarray) -> np.ndarray:
    return x[..., None] if x.ndim == 3 else x


def _mnist_dir(root: Path) -> Path:
    return root / "MNIST" / "raw"


def _has_mnist(root: Path) -> bool:
    return all((_mnist_dir(root) / f).is_file() for f in _MNIST_FILES)


def _has_cifar(root: Path) -> bool:
    return all((root / _CIFAR_FOLDER / f).is_file() for f in _CIFAR_FILES)


def _read_torchvision(name: str, root: Path, download: bool = False) -> DatasetSplits:
    import torchvision

    cls = torchvision.datasets.MNIST if name == "mnist" else torchvision.datasets.CIFAR10
    parts = {}
    for train in (True, False):
        ds = cls(str(root), train=train, download=download and train)
        data = ds.data.numpy() if isinstance(ds.data, torch.Tensor) else np.asarray(ds.data)
        targets = ds.targets.numpy() if isinstance(ds.targets, torch.Tensor) else np.asarray(ds.targets)
        classes = [c.split(" - ")[0] for c in ds.classes]  # MNIST: "0 - zero" -> "0"
        where = _mnist_dir(root) if name == "mnist" else root / _CIFAR_FOLDER
        split = "training" if train else "test"
        parts[train] = ImageArrays(np.ascontiguousarray(_with_channels(data.astype(np.uint8, copy=False))),
                                   targets, tuple(classes), name,
                                   f"{_PRETTY[name]} {split} split ({len(data):,} images) from {where}")
    return DatasetSplits(parts[True], parts[False], name)


def _read_arrays_file(path: Path, name: str | None = None) -> DatasetSplits:
    path = Path(path).expanduser()
    name = name or path.stem
    if not path.is_file():
        raise ValueError(f"arrays file {path} does not exist.")
    try:
        with np.load(path, allow_pickle=False) as archive:
            files = list(archive.files)
            missing = [k for k in ARRAY_KEYS if k not in files]
            if not missing:
                arrays = {k: archive[k] for k in ARRAY_KEYS}
                classes = archive["classes"] if "classes" in files else None
    except Exception as err:  # not an npz, or pickled objects
        raise ValueError(f"cannot read {path} as a plain .npz arrays file ({err}). It must be written with "
                         f"np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...) and hold no "
                         f"Python objects (class names as a string array).") from None
    if missing:
        raise ValueError(f"arrays file {path} lacks {missing}; it has {sorted(files)}. It must hold "
                         f"x_train, y_train, x_test, y_test (uint8 images (N, H, W) or (N, H, W, C), integer "
                         f"labels (N,)) and optionally classes (names in label order).")
    for k in ("x_train", "x_test"):
        x = arrays[k]
        if x.dtype != np.uint8:
            raise ValueError(f"{k} in {path} has dtype {x.dtype}; arrays files hold uint8 images 0..255. "
                             "Save (x * 255).round().astype(np.uint8) for floats in [0, 1].")
        if x.ndim not in (3, 4):
            raise ValueError(f"{k} in {path} has shape {x.shape}; expected (N, H, W) or (N, H, W, C).")
    for k in ("y_train", "y_test"):
        if not np.issubdtype(arrays[k].dtype, np.integer):
            raise ValueError(f"{k} in {path} has dtype {arrays[k].dtype}; labels must be integers.")
    if classes is None:
        top = max((int(arrays[k].max()) for k in ("y_train", "y_test") if arrays[k].size), default=0)
        classes = [str(i) for i in range(top + 1)]
    classes = tuple(str(c) for c in np.asarray(classes).reshape(-1))
    parts = [ImageArrays(_with_channels(arrays[f"x_{s}"]), arrays[f"y_{s}"], classes, name,
                         f"{_PRETTY.get(name, name)} {'training' if s == 'train' else 'test'} split "
                         f"({len(arrays[f'x_{s}']):,} images) from the arrays file {path}")
             for s in ("train", "test")]
    return DatasetSplits(parts[0], parts[1], name)


def _digits_to_mnist_layout(images: np.ndarray) -> np.ndarray:
    """(N, 8, 8) values 0..16 -> (N, 28, 28, 1) uint8, white digit on black."""
    x = torch.from_numpy(images.astype(np.float32) * (255.0 / 16.0))[:, None]
    x = F.interpolate(x, size=(20, 20), mode="bilinear", align_corners=False, antialias=True)
    x = F.pad(x.round().clamp(0, 255), (4, 4, 4, 4))
    return x.to(torch.uint8)[:, 0, :, :, None].numpy()


def _load_digits() -> DatasetSplits:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images, labels = _digits_to_mnist_layout(digits.images), digits.target.astype(np.int64)
    train_idx, test_idx = train_test_split(np.arange(len(labels)), test_size=1 / 3, random_state=0,
                                           stratify=labels)
    classes = tuple(str(c) for c in digits.target_names)
    base = (f"scikit-learn's digits (sklearn.datasets.load_digits: {len(labels):,} real 8x8 handwritten digits, "
            "scaled to 0..255, resized to 20x20 and padded to 28x28 like MNIST)")
    parts = []
    for split, idx in (("training", np.sort(train_idx)), ("test", np.sort(test_idx))):
        parts.append(ImageArrays(images[idx], labels[idx], classes, "digits",
                                 f"{split} part ({len(idx):,} images) of a fixed stratified 2:1 split of {base}"))
    return DatasetSplits(parts[0], parts[1], "digits")


# --------------------------------------------------------------------------- download

def _snapshot(paths: Sequence[Path]) -> set[Path]:
    seen = set()
    for p in paths:
        if p.exists():
            seen.add(p)
            if p.is_dir():
                seen.update(p.rglob("*"))
    return seen


def _undo(paths: Sequence[Path], before: set[Path]) -> None:
    """Remove whatever under ``paths`` did not exist in ``before``."""
    for p in paths:
        if not p.exists() and not p.is_symlink():
            continue
        if p not in before:
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
            continue
        if p.is_dir():
            for q in sorted(p.rglob("*"), key=lambda q: len(q.parts), reverse=True):
                if q not in before:
                    shutil.rmtree(q, ignore_errors=True) if q.is_dir() else q.unlink(missing_ok=True)


def _try_download(name: str, root: Path) -> tuple[DatasetSplits | None, str]:
    """Download with torchvision into ``root``; on failure undo and return the reason."""
    top = root.absolute()
    while not top.parent.exists() and top.parent != top:  # the highest folder the download would create
        top = top.parent
    if name == "mnist":
        owned = [root / "MNIST"]
    else:
        owned = [root / _CIFAR_FOLDER, root / "cifar-10-python.tar.gz"]
    watched = owned if root.exists() else [top]
    before = _snapshot(watched)
    log = io.StringIO()
    print(f"Downloading {_PRETTY[name]} into {root} ...", flush=True)
    try:
        with contextlib.redirect_stdout(log):
            return _read_torchvision(name, root, download=True), ""
    except Exception as err:  # offline: URLError, OSError, RuntimeError, ...
        _undo(watched, before)
        reason = " ".join(str(err).split()) or type(err).__name__
        return None, reason[:300]


# --------------------------------------------------------------------------- public loaders

def _unavailable(name: str, roots: list[Path], origin: str, download: bool | None,
                 failure: str) -> DataUnavailableError:
    pretty = _PRETTY[name]
    listed = ", ".join(str(r) for r in roots)
    if download is False:
        tried = "download=False, so nothing was downloaded"
    else:
        tried = f"downloading into {roots[0]} failed: {failure}"
    layout = (f"<root>/MNIST/raw/ with the four files {', '.join(_MNIST_FILES)} (torchvision's layout, "
              "as torchvision.datasets.MNIST(root, download=True) writes it)" if name == "mnist" else
              f"<root>/{_CIFAR_FOLDER}/ with {', '.join(_CIFAR_FILES)} (torchvision's layout, as "
              "torchvision.datasets.CIFAR10(root, download=True) writes it)")
    message = (
        f"{pretty} is not available here: it is not under the data roots [{listed}] (from {origin}), "
        f"and {tried}.\n"
        f"Supply it in one of these ways:\n"
        f"  1. Put it in torchvision's folder layout under one of the roots: {layout}.\n"
        f"  2. Point ust at the folder that holds it: load_dataset({name!r}, root='/path/to/datasets') or the "
        f"environment variable UST_DATA=/path/to/datasets (several roots separated by {os.pathsep!r}).\n"
        f"  3. Save it as an arrays file <root>/{name}.npz, or any path passed as load_dataset('/path/to/file.npz'): "
        f"a plain np.savez file with x_train, y_train, x_test, y_test (uint8 images (N, H, W) or (N, H, W, C), "
        f"integer labels (N,)) and optionally classes.\n"
        f"  4. On a machine with internet access, load_dataset({name!r}, download=True) downloads it into the "
        f"first root ({roots[0]}).\n"
        f"  5. Use the embedded set that needs no files: load_dataset('digits') (scikit-learn's 1,797 real 8x8 "
        f"handwritten digits in MNIST's 28x28 layout)"
        + (", or load_mnist_or_digits(), which falls back to it." if name == "mnist" else ".")
    )
    reason = f"not found under {listed}; " + ("download=False" if download is False else f"download failed: {failure}")
    return DataUnavailableError(message, reason)


def load_dataset(name: str | os.PathLike, root: str | os.PathLike | None = None,
                 download: bool | None = None) -> DatasetSplits:
    """Load MNIST, CIFAR-10, the embedded digits, or an arrays file.

    * ``"mnist"``: torchvision's layout ``<root>/MNIST/raw/*-ubyte`` or an
      arrays file ``<root>/mnist.npz``; images ``(N, 28, 28, 1)``, classes
      ``"0"`` .. ``"9"``.
    * ``"cifar10"``: torchvision's layout ``<root>/cifar-10-batches-py`` or
      ``<root>/cifar10.npz``; images ``(N, 32, 32, 3)``, classes
      ``"airplane"`` .. ``"truck"``.
    * ``"digits"``: embedded in scikit-learn, never downloaded: the 1,797
      real 8x8 digits of :func:`sklearn.datasets.load_digits` (values 0..16)
      scaled to 0..255, resized bilinearly (antialiased) to 20x20 and padded
      with 4 black pixels on every side, so that they look like MNIST
      (28x28, white digit on black). Split with
      ``train_test_split(test_size=1/3, random_state=0, stratify=labels)``:
      1,198 training and 599 test images.
    * a path ending in ``.npz`` (or any existing file): an arrays file, a
      plain ``np.savez`` archive with ``x_train``, ``y_train``, ``x_test``,
      ``y_test`` (uint8 images ``(N, H, W)`` or ``(N, H, W, C)``, integer
      labels) and optionally ``classes``.

    The roots (:func:`data_roots`) are searched in order; within a root,
    torchvision's layout comes before the arrays file.

    Args:
        name: ``"mnist"``, ``"cifar10"``, ``"digits"`` or a path to a
            ``.npz`` arrays file.
        root: Data root(s), see :func:`data_roots`.
        download: ``True`` or ``None`` (default): when the data is not
            found, let torchvision download it into the first root.
            ``False``: never download.

    Returns:
        Train and test :class:`ImageArrays`.

    Raises:
        DataUnavailableError: The data is not found and cannot be
            downloaded; the message lists every way to supply it. A failed
            download leaves no files or folders behind.
        ValueError: For an unknown name or a malformed arrays file.
    """
    text = os.fspath(name)
    key = text.lower().replace("-", "").replace("_", "")
    if key not in DATASET_NAMES and (text.endswith(".npz") or Path(text).expanduser().is_file()):
        return _read_arrays_file(Path(text))
    if key not in DATASET_NAMES:
        raise ValueError(f"unknown dataset {text!r}; choose one of {DATASET_NAMES} or give the path of an "
                         "arrays file ending in .npz.")
    if key == "digits":
        return _load_digits()
    roots, origin = _roots_and_origin(root)
    for r in roots:
        if key == "mnist" and _has_mnist(r) or key == "cifar10" and _has_cifar(r):
            return _read_torchvision(key, r)
        if (r / f"{key}.npz").is_file():
            return _read_arrays_file(r / f"{key}.npz", key)
    failure = ""
    if download is not False:
        splits, failure = _try_download(key, roots[0])
        if splits is not None:
            return splits
    raise _unavailable(key, roots, origin, download, failure) from None


def load_mnist_or_digits(root: str | os.PathLike | None = None, download: bool | None = None) -> DatasetSplits:
    """MNIST if it is available, else the embedded digits in its place.

    The fallback is announced, both printed and as a :class:`UserWarning`,
    e.g. *"MNIST is not available here (not found under ./data; ...); using
    the embedded scikit-learn digits (1,797 images) as a stand-in for
    MNIST."*, and the result has ``stand_in_for="mnist"``.

    Args:
        root: Data root(s), see :func:`data_roots`.
        download: As in :func:`load_dataset`.

    Returns:
        MNIST, or the digits with ``stand_in_for="mnist"``.
    """
    try:
        return load_dataset("mnist", root=root, download=download)
    except DataUnavailableError as err:
        reason = err.reason
    digits = load_dataset("digits")
    digits.stand_in_for = "mnist"
    n = len(digits.train) + len(digits.test)
    notice = (f"MNIST is not available here ({reason}); using the embedded scikit-learn digits ({n:,} images) "
              "as a stand-in for MNIST.")
    print(notice, flush=True)
    warnings.warn(notice, UserWarning, stacklevel=2)
    return digits


# --------------------------------------------------------------------------- preprocessing

def _size_pair(image_size) -> tuple[int, int] | None:
    if image_size is None:
        return None
    if isinstance(image_size, (int, np.integer)) and not isinstance(image_size, bool):
        pair = (int(image_size), int(image_size))
    elif isinstance(image_size, (tuple, list)) and len(image_size) == 2:
        pair = (int(image_size[0]), int(image_size[1]))
    else:
        raise ValueError(f"image_size must be an int (square) or a pair (H, W); got {image_size!r}.")
    if min(pair) < 1:
        raise ValueError(f"image_size must be positive; got {image_size!r}.")
    return pair


def resize_images(images: torch.Tensor, image_size: int | tuple[int, int]) -> torch.Tensor:
    """The resize step of :func:`preprocess`, for float images already in [0, 1].

    Introduced in the book's chapter *Results* (a synthetic defect drawn at
    native size, then resized like the image). Bilinear with antialiasing
    (``F.interpolate(..., antialias=True)``), clamped to [0, 1].

    Args:
        images: float ``(N, C, H, W)`` in [0, 1].
        image_size: Output size (an int gives a square).

    Returns:
        float ``(N, C, H', W')`` (the input itself when the size is already right).
    """
    size = _size_pair(image_size)
    if images.dim() != 4 or not images.is_floating_point():
        raise ValueError(f"resize_images expects float images (N, C, H, W); got {images.dtype} "
                         f"{tuple(images.shape)}. uint8 images go through ust.data.preprocess.")
    if size == tuple(images.shape[-2:]):
        return images
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True).clamp_(0.0, 1.0)


def preprocess(images: np.ndarray | torch.Tensor, image_size: int | tuple[int, int] | None = None,
               channels: int | None = None, batch_size: int = 1024) -> torch.Tensor:
    """uint8 images -> float32 network input, the same for every method.

    1. uint8 0..255 -> float32 in [0, 1] (divide by 255);
    2. ``channels=1`` turns RGB into gray with the ITU-R BT.601 weights
       0.299 R + 0.587 G + 0.114 B (as PIL and torchvision do);
    3. optional resize to ``image_size`` (an int gives a square), bilinear
       with antialiasing (``F.interpolate(..., antialias=True)``), clamped
       to [0, 1];
    4. ``channels=3`` repeats a grayscale channel three times: grayscale
       data enters the RGB teachers as three equal channels.

    ``channels=None`` keeps the channels as they are.

    Args:
        images: uint8 ``(N, H, W, C)`` (``C`` = 1 or 3) or ``(N, H, W)``,
            numpy array or tensor.
        image_size: Output size, or ``None`` to keep it.
        channels: 1, 3 or ``None``.
        batch_size: Images converted at a time (bounds the peak memory).

    Returns:
        float32 ``(N, C, H', W')`` in [0, 1] (a new, contiguous tensor).
    """
    if isinstance(images, np.ndarray) and not images.flags.writeable:
        images = images.copy()  # torch warns about read-only arrays (e.g. np.asarray of a PIL image)
    x = torch.as_tensor(images) if not isinstance(images, torch.Tensor) else images
    if x.dtype != torch.uint8:
        raise ValueError(f"preprocess expects uint8 images 0..255; got dtype {x.dtype}. For float images in "
                         "[0, 1], skip this step or convert with (x * 255).round().to(torch.uint8).")
    if x.dim() == 3:
        x = x[..., None]
    if x.dim() != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(f"preprocess expects images of shape (N, H, W, C) with C = 1 or 3, or (N, H, W); "
                         f"got {tuple(x.shape)}. Images as (N, C, H, W) go through x.permute(0, 2, 3, 1) first.")
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be 1, 3 or None; got {channels!r}.")
    size = _size_pair(image_size)
    out_c = x.shape[-1] if channels is None else channels
    out_hw = size or tuple(x.shape[1:3])
    out = torch.empty((x.shape[0], out_c, *out_hw), dtype=torch.float32)
    luma = torch.tensor(_LUMA, dtype=torch.float32).view(1, 3, 1, 1)
    for start in range(0, x.shape[0], batch_size):
        chunk = x[start:start + batch_size].permute(0, 3, 1, 2).float().div_(255.0)
        if channels == 1 and chunk.shape[1] == 3:
            chunk = (chunk * luma).sum(1, keepdim=True)
        if size is not None:
            chunk = resize_images(chunk, size)
        chunk = chunk.clamp_(0.0, 1.0)
        out[start:start + batch_size] = chunk.expand(-1, out_c, -1, -1)
    return out


# --------------------------------------------------------------------------- subsets

def stratified_subset(labels: np.ndarray | torch.Tensor | Sequence[int], n: int, seed: int = 0) -> np.ndarray:
    """A fixed subset of ``n`` indices with the class proportions of ``labels``.

    Each class gets ``floor(n * count / N)`` indices; the few left over go
    to the classes with the largest remainders (ties: the smaller label).
    Within a class the indices are drawn at random with
    ``np.random.default_rng(seed)``, so the same call always gives the same
    subset (e.g. 2,000 of MNIST's 10,000 test images: 196 zeros, 227 ones,
    ...).

    Args:
        labels: ``(N,)`` integer labels.
        n: Subset size, ``1 <= n <= N``.
        seed: Random seed.

    Returns:
        int64 ``(n,)`` indices into ``labels``, sorted ascending.
    """
    y = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels).reshape(-1)
    if not 1 <= int(n) <= len(y):
        raise ValueError(f"stratified_subset: n must be between 1 and the number of labels ({len(y):,}); "
                         f"got n={n}. Use all indices, np.arange({len(y)}), for the full set.")
    classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    quota = counts * int(n) / len(y)
    take = np.floor(quota).astype(np.int64)
    order = np.lexsort((np.arange(len(classes)), -(quota - take)))  # largest remainder, then smaller label
    take[order[: int(n) - take.sum()]] += 1
    rng = np.random.default_rng(seed)
    picked = [rng.choice(np.flatnonzero(inverse == k), size=t, replace=False) for k, t in enumerate(take) if t]
    return np.sort(np.concatenate(picked)).astype(np.int64)


# --------------------------------------------------------------------------- one-class protocol

@dataclass(eq=False)
class OneClassData:
    """One normal class against all others (the paper's Table 1 protocol).

    Attributes:
        train: float32 ``(N_train, C, H, W)`` in [0, 1], training images of
            the normal class.
        val: float32 ``(N_val, C, H, W)``, held-out images of the normal
            class (anomaly-free; for score normalisation and settings).
        test: float32 ``(N_test, C, H, W)``, the whole test split.
        test_labels: int64 ``(N_test,)``: 0 normal, 1 anomalous (any other
            class).
        test_classes: int64 ``(N_test,)``, the original class labels.
        normal_class: Label of the normal class.
        class_name: Its name, e.g. ``"3"`` or ``"cat"``.
        description: Where the data came from and how it was split.
    """

    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor
    test_labels: torch.Tensor
    test_classes: torch.Tensor
    normal_class: int
    class_name: str
    description: str

    def __repr__(self) -> str:
        return (f"OneClassData(class_name={self.class_name!r}, normal_class={self.normal_class}, "
                f"train={tuple(self.train.shape)}, val={tuple(self.val.shape)}, test={tuple(self.test.shape)}, "
                f"anomalous={int(self.test_labels.sum())})")


def _class_index(normal_class: int | str, classes: tuple[str, ...]) -> int:
    valid = ", ".join(f"{i} {c!r}" for i, c in enumerate(classes))
    if isinstance(normal_class, (int, np.integer)) and not isinstance(normal_class, bool):
        if 0 <= int(normal_class) < len(classes):
            return int(normal_class)
    elif isinstance(normal_class, str) and normal_class in classes:
        return classes.index(normal_class)
    raise ValueError(f"unknown normal class {normal_class!r}; give a label or a name from: {valid}.")


def one_class_split(splits: DatasetSplits, normal_class: int | str, *, val_fraction: float = 0.1,
                    image_size: int | tuple[int, int] | None = None, channels: int | None = None,
                    max_train: int | None = None, max_test: int | None = None, seed: int = 0) -> OneClassData:
    """One-class split: train on one class, test on the whole test split.

    Bergmann et al. (2020), Sec. 4.1 / Table 1, after Ruff et al. (Deep
    SVDD, 2018):

    * training images: the training split's images of ``normal_class``;
      ``val_fraction`` of them (at least one, drawn at random with ``seed``)
      are held out as the anomaly-free validation set;
    * ``max_train`` optionally caps the remaining training images at a
      random subset (seeded), for quick runs; the validation set keeps its
      size;
    * test: the whole test split (or, with ``max_test``, the fixed
      :func:`stratified_subset` of that size), labelled 1 for every image
      of another class and 0 for the normal class.

    Every image goes through :func:`preprocess` with the same
    ``image_size`` and ``channels``: uint8 -> float32 in [0, 1], optional
    bilinear antialiased resize, ``channels=3`` repeats a grayscale channel
    three times, ``channels=1`` converts RGB to gray, ``None`` keeps it.

    Args:
        splits: From :func:`load_dataset` or :func:`load_mnist_or_digits`.
        normal_class: Label (``3``) or class name (``"cat"``).
        val_fraction: Fraction of the normal training images held out,
            in (0, 1).
        image_size: Resize to this size (int: square), or ``None``.
        channels: 1, 3 or ``None``.
        max_train: Cap on the number of training images, or ``None``.
        max_test: Size of a stratified test subset, or ``None`` for all.
        seed: Seed of the validation draw and of the subsets.

    Returns:
        :class:`OneClassData`.
    """
    classes = splits.classes
    c = _class_index(normal_class, classes)
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must lie strictly between 0 and 1; got {val_fraction}. "
                         "The validation images (at least one) are needed for score normalisation.")
    normal = np.flatnonzero(splits.train.labels == c)
    if len(normal) < 2:
        raise ValueError(f"class {classes[c]!r} has {len(normal)} training image(s) in {splits.name}; the split "
                         "needs at least 2 (one for training, one for validation).")
    rng = np.random.default_rng(seed)
    perm = rng.permutation(normal)
    n_val = min(max(1, int(round(val_fraction * len(normal)))), len(normal) - 1)
    val_idx, train_idx = np.sort(perm[:n_val]), perm[n_val:]
    if max_train is not None:
        if max_train < 1:
            raise ValueError(f"max_train must be at least 1 or None; got {max_train}.")
        train_idx = train_idx[:max_train]  # already a random order
    train_idx = np.sort(train_idx)
    test_idx = np.arange(len(splits.test))
    if max_test is not None and max_test < len(test_idx):
        test_idx = stratified_subset(splits.test.labels, max_test, seed=seed)
    test_classes = torch.from_numpy(splits.test.labels[test_idx].copy())
    test_labels = (test_classes != c).long()
    prep = dict(image_size=image_size, channels=channels)
    train = preprocess(splits.train.images[train_idx], **prep)
    val = preprocess(splits.train.images[val_idx], **prep)
    test = preprocess(splits.test.images[test_idx], **prep)
    src = _PRETTY.get(splits.name, splits.name)
    stand_in = (f" The {src} set stands in for {_PRETTY.get(splits.stand_in_for, splits.stand_in_for)}."
                if splits.stand_in_for else "")
    n_anom = int(test_labels.sum())
    description = (
        f"{src}, one class: normal class {c} ({classes[c]!r}). Training: {len(train_idx):,} images of class "
        f"{classes[c]!r}, validation: {len(val_idx):,} more held out from them, from the {splits.train.description}. "
        f"Test: {len(test_idx):,} images ({'all' if len(test_idx) == len(splits.test) else 'a stratified subset'} "
        f"of the {splits.test.description}), {len(test_idx) - n_anom:,} normal and {n_anom:,} anomalous "
        f"(every other class). Images {tuple(train.shape[1:])} float32 in [0, 1].{stand_in}")
    return OneClassData(train, val, test, test_labels, test_classes, c, classes[c], description)
