"""The one-class benchmark: train, calibrate, score, AUROC, per class and seed.

Introduced in the book's chapter *Results* (the paper's Table 1), and used
by ``python -m ust benchmark`` (:mod:`ust.cli`).

Bergmann et al. (2020), Sec. 4.1 / Table 1: for every class of MNIST or
CIFAR-10, students are trained on that class only (the one-class protocol of
:func:`~ust.data.one_class_split`) and the image-level AUROC on the whole
test split is reported, per patch size and fused over the three patch
sizes (Eq. 13).

* :func:`run_one_class` runs one (class, seed) pair and returns one row
  per scale and score component;
* :func:`run_benchmark` runs many pairs, writes every finished pair to a
  CSV file at once (atomically) and skips the pairs already there;
* :func:`summarize` averages the rows over seeds and classes for the book.

Rows are plain dictionaries with the keys :data:`COLUMNS`; the CSV holds the
same columns, and :func:`read_rows` reads it back with the right types.
"""

from __future__ import annotations

import csv
import datetime
import json
import math
import os
import platform
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch

from ._io import atomic_write, is_missing
from .data.datasets import (
    DATASET_NAMES,
    DatasetSplits,
    ImageArrays,
    OneClassData,
    load_dataset,
    load_mnist_or_digits,
    one_class_split,
    stratified_subset,
)
from .networks import PATCH_SIZES, PatchNet
from .runtime import select_device
from .scores import IMAGE_REDUCTIONS, SCORE_COMPONENTS, anomaly_score, image_score

if TYPE_CHECKING:
    from .model import StudentTeacher

__all__ = [
    "COLUMNS", "DATASET_CHOICES", "FUSED", "load_splits", "resolve_class", "parse_classes", "component_scores",
    "run_one_class", "run_benchmark", "read_rows", "write_rows", "summarize", "hardware_description",
    "synthetic_validation_auroc", "VALIDATION_KINDS", "validation_column", "checkpoint_aurocs",
    "checkpoint_aurocs_by_reduction", "validation_aurocs_by_scale", "teacher_name",
    "run_baselines_one_class", "run_baselines", "BASELINE_COLUMNS", "BASELINE_METHODS",
]

#: The keys of a result row and the columns of the benchmark CSV, in order.
COLUMNS = ("dataset", "normal_class", "class_name", "seed", "scale", "components", "auroc", "n_train", "n_test",
           "test_subset", "train_seconds", "score_seconds", "image_size", "n_students", "iterations",
           "stand_in_for", "teacher")

#: Dataset names :func:`load_splits` accepts besides the path of an arrays file.
DATASET_CHOICES = DATASET_NAMES + ("mnist-or-digits",)

#: The ``scale`` of the rows that fuse all patch sizes (Eq. 13).
FUSED = "fused"

_INT_COLUMNS = ("normal_class", "seed", "n_train", "n_test", "n_students", "iterations")
_FLOAT_COLUMNS = ("auroc", "train_seconds", "score_seconds")


# --------------------------------------------------------------------------- data and classes

def load_splits(dataset: str | os.PathLike, root: str | os.PathLike | None = None) -> DatasetSplits:
    """A dataset by name or arrays-file path, for the benchmark and the CLI.

    Introduced in the book's chapter *Results*.

    Args:
        dataset: ``"mnist"``, ``"cifar10"``, ``"digits"`` (see
            :func:`~ust.data.load_dataset`), ``"mnist-or-digits"`` (MNIST if
            available, else the embedded digits with ``stand_in_for="mnist"``,
            :func:`~ust.data.load_mnist_or_digits`), or the path of an
            ``.npz`` arrays file.
        root: Data root(s), see :func:`~ust.data.data_roots`.

    Returns:
        The train and test splits.

    Raises:
        ValueError: An unknown name or a path that does not exist (the
            message lists the valid names).
        DataUnavailableError: MNIST or CIFAR-10 is neither on disk nor
            downloadable (the message lists every way to supply it).
    """
    text = os.fspath(dataset)
    key = text.lower().replace("_", "-")
    if key == "mnist-or-digits":
        return load_mnist_or_digits(root)
    if key.replace("-", "") in DATASET_NAMES:
        return load_dataset(key.replace("-", ""), root=root)
    if Path(text).expanduser().is_file():
        return load_dataset(text)
    what = "no arrays file" if text.endswith(".npz") else "unknown dataset"
    raise ValueError(f"{what} {text!r}: choose one of {', '.join(DATASET_CHOICES)}, or give the path of an existing "
                     ".npz arrays file (x_train, y_train, x_test, y_test).")


def resolve_class(classes: Sequence[str], value: int | str) -> int:
    """The label of a class given by label or by name.

    Introduced in the book's chapter *Results*.

    A name wins over a label (CIFAR-10's ``"cat"``; for the digits ``"3"``
    is both). Digit strings that are not names are read as labels.

    Args:
        classes: Class names in label order.
        value: A label (``3``, ``"3"``) or a name (``"cat"``).

    Returns:
        The label, ``0 <= label < len(classes)``.

    Raises:
        ValueError: Neither a label nor a name; the message lists the classes.
    """
    classes = tuple(str(c) for c in classes)
    if isinstance(value, str):
        text = value.strip()
        if text in classes:
            return classes.index(text)
        if text.lstrip("-").isdigit():
            value = int(text)
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and 0 <= int(value) < len(classes):
        return int(value)
    listed = ", ".join(f"{i} {c!r}" for i, c in enumerate(classes))
    raise ValueError(f"unknown class {value!r}: give a label 0..{len(classes) - 1} or a name; "
                     f"the classes are {listed}.")


def parse_classes(specs: str | int | Iterable[str | int], classes: Sequence[str]) -> list[int]:
    """Labels from a class specification such as ``"0-9"``, ``"1,3,5"`` or ``["cat", "dog"]``.

    Introduced in the book's chapter *Results* (``python -m ust benchmark
    --classes``).

    Each item may hold several parts separated by commas; a part is
    ``"all"``, a label, a name, or an inclusive range of labels ``"a-b"``.
    Duplicates are dropped, the order is kept.

    Args:
        specs: One specification or several.
        classes: Class names in label order.

    Returns:
        The labels.

    Raises:
        ValueError: An unknown class or an empty or reversed range.
    """
    if isinstance(specs, (str, int, np.integer)):
        specs = [specs]
    out: list[int] = []
    for spec in specs:
        for part in str(spec).split(","):
            part = part.strip()
            if not part:
                continue
            if part.lower() == "all":
                labels = list(range(len(classes)))
            elif part not in classes and "-" in part[1:]:
                low, high = part.split("-", 1)
                a, b = resolve_class(classes, low), resolve_class(classes, high)
                if a > b:
                    raise ValueError(f"class range {part!r} runs backwards; write it as {b}-{a}.")
                labels = list(range(a, b + 1))
            else:
                labels = [resolve_class(classes, part)]
            out.extend(label for label in labels if label not in out)
    if not out:
        raise ValueError(f"no classes given in {specs!r}: use e.g. 0-9, 1,3,5 or all.")
    return out


def _test_subset(splits: DatasetSplits, max_test: int | None, subset_seed: int) -> tuple[DatasetSplits, bool]:
    """The splits with the test split cut to a fixed stratified subset (if ``max_test`` is smaller)."""
    test = splits.test
    if max_test is None or max_test >= len(test):
        return splits, False
    index = stratified_subset(test.labels, max_test, seed=subset_seed)
    subset = ImageArrays(test.images[index], test.labels[index], test.classes, test.name,
                         f"stratified subset of {len(index):,} images (seed {subset_seed}) of the {test.description}")
    return DatasetSplits(splits.train, subset, splits.name, splits.stand_in_for), True


# --------------------------------------------------------------------------- scoring

@torch.no_grad()
def component_scores(model, images: torch.Tensor, components: Sequence[str] = SCORE_COMPONENTS, *,
                     dense: bool = False, reduction: str = "mean", batch_size: int = 64) -> dict[str, torch.Tensor]:
    """Image scores for several score components from one pass of the networks.

    Introduced in the book's chapter *Results* (the ablation of Eq. 12's
    two terms).

    Equal to ``model.image_scores(images, dense, c, reduction)`` for every
    ``c`` in ``components``, but the teacher and the students run once per
    image instead of once per component.

    Args:
        model: A calibrated :class:`~ust.model.StudentTeacher`.
        images: ``(N, C, H, W)`` in ``[0, 1]``.
        components: Any of ``"both"``, ``"error"``, ``"variance"``.
        dense: Dense maps or the native lattice.
        reduction: ``"mean"`` or ``"max"`` (see :func:`~ust.image_score`).
        batch_size: Images per forward pass.

    Returns:
        ``{component: (N,) scores}`` on the CPU.

    Raises:
        ValueError: An uncalibrated model, an unknown component or an
            unknown reduction.
    """
    return _scores_by_reduction(model, images, components, dense=dense, reductions=(reduction,),
                                batch_size=batch_size)[reduction]


def _check_reductions(reductions: Sequence[str]) -> None:
    """Refuse an empty or unknown list of map reductions before any network runs."""
    unknown = [r for r in reductions if r not in IMAGE_REDUCTIONS]
    if unknown or not reductions:
        raise ValueError(f"reduction must be one of {IMAGE_REDUCTIONS}; got {list(reductions)!r}.")


@torch.no_grad()
def _scores_by_reduction(model, images: torch.Tensor, components: Sequence[str], *, dense: bool,
                         reductions: Sequence[str], batch_size: int = 64) -> dict[str, dict[str, torch.Tensor]]:
    """``{reduction: {component: (N,) scores}}``: each map computed once and reduced in every way asked."""
    if model.normalization is None:
        raise ValueError("the model has no score normalisation yet: call model.calibrate(validation_images) "
                         "with anomaly-free images first.")
    unknown = [c for c in components if c not in SCORE_COMPONENTS]
    if unknown:
        raise ValueError(f"unknown score components {unknown}; choose from {SCORE_COMPONENTS}.")
    _check_reductions(reductions)
    out: dict[str, dict[str, list[torch.Tensor]]] = {r: {c: [] for c in components} for r in reductions}
    for batch in model._batches(images, batch_size, False, f"score p={model.patch_size}"):
        error, variance = model.error_and_variance(batch, dense)
        for c in components:
            score_map = anomaly_score(error, variance, model.normalization, c)
            for r in reductions:
                out[r][c].append(image_score(score_map, r).cpu())
    return {r: {c: torch.cat(v) if v else torch.empty(0) for c, v in per.items()} for r, per in out.items()}


@contextmanager
def _calibrated(models: Sequence, images: torch.Tensor, dense: bool = False):
    """Calibrate ``models`` on ``images`` for the ``with`` block; give back their own normalisation after it."""
    saved = [m.normalization for m in models]
    try:
        for m in models:
            m.calibrate(images, dense=dense)
        yield
    finally:
        for m, n in zip(models, saved):
            m.normalization = n


def teacher_name(teacher: PatchNet) -> str:
    """How result tables name a teacher: ``pretrained:33:kc`` for a shipped one, else its ``name`` or ``"custom"``."""
    return str(getattr(teacher, "name", "") or "custom")


def _scores_file(folder, dataset: str, label: int, seed: int, teacher: PatchNet, settings: Mapping) -> Path:
    """Where one scale's test scores are kept: named by class, seed, scale and a settings fingerprint."""
    import hashlib

    from .checkpoints import weights_sha256

    text = json.dumps({**_plain(dict(settings)), "teacher": weights_sha256(teacher.state_dict())}, sort_keys=True)
    fingerprint = hashlib.sha256(text.encode()).hexdigest()[:12]
    return Path(folder) / f"{dataset}_class{label}_seed{seed}_p{teacher.patch_size}_{fingerprint}.npz"


def _save_scores(path: Path, scores: Mapping[str, torch.Tensor], labels: torch.Tensor, train_seconds: float,
                 score_seconds: float) -> None:
    arrays = {f"score_{c}": v.numpy() for c, v in scores.items()}
    atomic_write(path, lambda h: np.savez(h, labels=labels.numpy(), train_seconds=train_seconds,
                                          score_seconds=score_seconds, **arrays), binary=True)


def _load_scores(path: Path, components: Sequence[str], labels: torch.Tensor):
    with np.load(path, allow_pickle=False) as saved:
        if not np.array_equal(saved["labels"], labels.numpy()):
            raise ValueError(f"{path} holds scores for other test images; delete it to score again.")
        scores = {c: torch.from_numpy(saved[f"score_{c}"]) for c in components}
        return scores, float(saved["train_seconds"]), float(saved["score_seconds"])


def _check_teachers(teachers: Mapping[int, PatchNet]) -> int:
    if not teachers:
        raise ValueError("teachers is empty: pass {patch_size: PatchNet}, e.g. {65: ust.PatchNet(65)} or "
                         "teachers loaded with ust.checkpoints.load_teacher.")
    for p, teacher in teachers.items():
        if not isinstance(teacher, PatchNet):
            raise ValueError(f"teachers[{p}] is a {type(teacher).__name__}, not a ust.PatchNet.")
        if int(p) != teacher.patch_size:
            raise ValueError(f"teachers[{p}] is a PatchNet with patch_size={teacher.patch_size}; the key must be "
                             "its patch size.")
    channels = {t.in_channels for t in teachers.values()}
    if len(channels) > 1:
        raise ValueError(f"the teachers take different numbers of channels {sorted(channels)}; they must agree.")
    return channels.pop()


# --------------------------------------------------------------------------- one class

def run_one_class(splits: DatasetSplits, normal_class: int | str, teachers: Mapping[int, PatchNet], *,
                  n_students: int = 3, iterations: int = 1000, batch_size: int = 16, lr: float = 1e-4,
                  image_size: int | tuple[int, int] | None = None, seed: int = 0, max_train: int | None = None,
                  max_test: int | None = None, subset_seed: int = 0,
                  components: Sequence[str] = SCORE_COMPONENTS, dense: bool = False,
                  device: str | torch.device | None = None, progress: bool = True,
                  scores_dir: str | os.PathLike | None = None,
                  on_model: Callable[[int, StudentTeacher, OneClassData], None] | None = None) -> list[dict[str, Any]]:
    """One class of the one-class benchmark at every scale, plus the fusion.

    Introduced in the book's chapter *Results*.

    1. :func:`~ust.data.one_class_split` with the teachers' channels (the
       pretrained teachers are RGB: grayscale images become three equal
       channels), ``image_size`` and ``seed``;
    2. per patch size: :func:`~ust.training.train_students` on the training
       images, :meth:`~ust.model.StudentTeacher.calibrate` on the held-out
       validation images, image scores of the test images (mean over the
       map, :func:`component_scores`) and their AUROC for each component;
    3. with several patch sizes, the fused score (Eq. 13): the mean of the
       scales' image scores. With the mean reduction this equals
       :meth:`~ust.model.MultiScaleStudentTeacher.image_scores` (lattice
       maps: by its definition; dense maps: the mean of the fused map is
       the mean of the scales' means), without running the networks again.

    With ``max_test`` the test split is cut to a fixed
    :func:`~ust.data.stratified_subset` drawn with ``subset_seed`` (not
    ``seed``), so that every class and seed scores the same images.

    With ``scores_dir`` each scale's test image scores are saved there
    (``.npz``, named after the class, seed, scale and a fingerprint of the
    settings and the teacher's weights) and reused when present: a run that
    stopped, or a later run that adds a scale, trains only what is missing,
    and the fusion is computed from the saved scores.

    Args:
        splits: From :func:`load_splits`.
        normal_class: Label or name of the normal class.
        teachers: ``{patch_size: PatchNet}``; the scales run in this order.
        n_students, iterations, batch_size, lr: See :func:`~ust.training.train_students`.
        image_size: Resize to this size (int: square), or ``None`` to keep it.
        seed: Seeds the validation draw, the training-image cap and the students.
        max_train: Cap on the number of training images (quick runs).
        max_test: Size of a stratified test subset, or ``None`` for all.
        subset_seed: Seed of that subset.
        components: Score components to evaluate (:data:`~ust.SCORE_COMPONENTS`).
        dense: Train, calibrate and score on dense maps instead of the
            native lattice.
        device: See :func:`~ust.runtime.select_device`.
        progress: Show tqdm bars while training.
        scores_dir: Folder for the per-scale test scores (see above), or ``None``.
        on_model: Called as ``on_model(patch_size, model, data)`` once each
            scale is trained, calibrated and has scored the test split, with
            the :class:`~ust.model.StudentTeacher` (on the CPU) and the
            class's :class:`~ust.data.OneClassData`: for studies that need
            the students themselves (``benchmarks/scale_choice.py`` scores
            validation anomalies with them). Not called for a scale whose
            scores come from ``scores_dir``.

    Returns:
        Rows with the keys :data:`COLUMNS`: for each scale (``"17"``,
        ``"33"``, ``"65"``, then ``"fused"`` if there are several) one row
        per component. ``train_seconds`` covers training and calibration,
        ``score_seconds`` the test scores; the fused rows hold the sums.

    Raises:
        ValueError: Bad teachers, class, components or arguments.
    """
    channels = _check_teachers(teachers)
    components = tuple(components)
    if not components or any(c not in SCORE_COMPONENTS for c in components):
        raise ValueError(f"components must be a non-empty selection of {SCORE_COMPONENTS}; got {components}.")
    device = select_device(device)
    label = resolve_class(splits.classes, normal_class)
    tested, subset = _test_subset(splits, max_test, subset_seed)
    data = one_class_split(tested, label, image_size=image_size, channels=channels, max_train=max_train, seed=seed)
    from .metrics import image_auroc  # scikit-learn: imported when needed, so that `python -m ust --help` is quick
    from .training import train_students

    common = dict(dataset=splits.name, normal_class=label, class_name=data.class_name, seed=seed,
                  n_train=len(data.train), n_test=len(data.test), test_subset=subset,
                  image_size=f"{data.test.shape[-2]}x{data.test.shape[-1]}", n_students=n_students,
                  iterations=iterations, stand_in_for=splits.stand_in_for or "")
    rows: list[dict[str, Any]] = []
    per_scale: list[dict[str, torch.Tensor]] = []
    total_train = total_score = 0.0
    for p, teacher in teachers.items():
        cached = None
        if scores_dir is not None:
            settings = dict(n_students=n_students, iterations=iterations, batch_size=batch_size, lr=lr,
                            image_size=common["image_size"], max_train=max_train, max_test=max_test,
                            subset_seed=subset_seed, dense=dense, n_test=len(data.test), n_train=len(data.train))
            cached = _scores_file(scores_dir, splits.name, label, seed, teacher, settings)
        if cached is not None and cached.is_file():
            scores, train_seconds, score_seconds = _load_scores(cached, components, data.test_labels)
        else:
            start = time.perf_counter()
            training = train_students(teacher, data.train, n_students=n_students, iterations=iterations,
                                      batch_size=batch_size, lr=lr, dense=dense, seed=seed, device=device,
                                      progress=progress)
            model = training.model.to(device)
            model.calibrate(data.val, dense=dense)
            train_seconds = time.perf_counter() - start
            start = time.perf_counter()
            scores = component_scores(model, data.test, SCORE_COMPONENTS if cached is not None else components,
                                      dense=dense)
            score_seconds = time.perf_counter() - start
            model.cpu()
            if cached is not None:
                _save_scores(cached, scores, data.test_labels, train_seconds, score_seconds)
            if on_model is not None:
                on_model(p, model, data)
        per_scale.append(scores)
        total_train += train_seconds
        total_score += score_seconds
        for c in components:
            rows.append({**common, "scale": str(p), "components": c, "teacher": teacher_name(teacher),
                         "auroc": image_auroc(scores[c], data.test_labels),
                         "train_seconds": train_seconds, "score_seconds": score_seconds})
    if len(per_scale) > 1:
        for c in components:
            fused = torch.stack([s[c] for s in per_scale]).mean(0)
            rows.append({**common, "scale": FUSED, "components": c, "auroc": image_auroc(fused, data.test_labels),
                         "teacher": "+".join(teacher_name(t) for t in teachers.values()),
                         "train_seconds": total_train, "score_seconds": total_score})
    return [{k: row[k] for k in COLUMNS} for row in rows]


# --------------------------------------------------------------------------- CSV

def synthetic_validation_auroc(model, val_images: torch.Tensor, *, kind: str = "stroke", seed: int = 0,
                               dense: bool = False, components: str = "both",
                               image_size: int | tuple[int, int] | None = None, reduction: str = "mean") -> float:
    """Choose settings without looking at test data: AUROC on synthetic anomalies.

    Introduced in the book's chapter *Results*.

    Half of the anomaly-free validation images (a seeded random half)
    calibrates the score; the other half is scored twice, as it is (normal)
    and made anomalous: with a local defect of
    :func:`~ust.data.add_synthetic_anomalies` drawn in (``kind`` one of
    :data:`~ust.data.SYNTHETIC_KINDS`), or changed as a whole by
    :func:`~ust.data.global_anomalies` (``kind`` one of
    :data:`~ust.data.GLOBAL_KINDS`: turned by a quarter turn, spliced to
    another image of the half, or with its halves swapped; a global change
    of shape like another digit's). The model's own normalisation is left
    as it was.

    With ``image_size``, pass the validation images at their own size: the
    anomalies are drawn there, and then all images, normal and anomalous,
    are resized (:func:`~ust.data.resize_images`) for a model trained on
    resized images. The defect is then blurred as the image content is.
    Drawn after an upscaling instead, a sharp defect on blurred content
    is easier to see, and the score rises with the image size whatever
    the students learned.

    Args:
        model: A trained :class:`~ust.model.StudentTeacher` or
            :class:`~ust.model.MultiScaleStudentTeacher`.
        val_images: ``(N, C, H, W)`` validation images, ``N >= 4``.
        kind: Synthetic anomaly kind: ``"stroke"``, ``"blob"``, ``"paste"``,
            ``"rotate"``, ``"splice"`` or ``"swap"``.
        seed: Seeds the halves and the anomalies.
        dense: Score dense maps or the native lattice.
        components: Score components.
        image_size: Size the model works at, or ``None`` for the images' own.
        reduction: How a map becomes an image score, ``"mean"`` or ``"max"``
            (:func:`~ust.image_score`).

    Returns:
        Image AUROC, normal versus synthetic.

    Raises:
        ValueError: Fewer than 4 images, an unknown ``kind`` or
            ``reduction``, or ``"rotate"`` on non-square images.
    """
    from .metrics import image_auroc
    from .model import MultiScaleStudentTeacher

    _check_reductions((reduction,))
    calib, held, anomalous = _synthetic_validation_sets(val_images, kind, seed, image_size)
    scales = list(model.scales) if isinstance(model, MultiScaleStudentTeacher) else [model]
    with _calibrated(scales, calib, dense=dense):
        scores = model.image_scores(torch.cat([held, anomalous]), dense=dense, components=components,
                                    reduction=reduction)
    return image_auroc(scores, _normal_then_anomalous(held, anomalous))


def _synthetic_validation_sets(val_images: torch.Tensor, kind: str, seed: int,
                               image_size: int | tuple[int, int] | None) -> tuple[torch.Tensor, ...]:
    """The three image sets of :func:`synthetic_validation_auroc`: ``(calibration, normal, anomalous)``."""
    from .data import GLOBAL_KINDS, SYNTHETIC_KINDS, add_synthetic_anomalies, global_anomalies, resize_images

    if kind not in SYNTHETIC_KINDS + GLOBAL_KINDS:
        raise ValueError(f"kind must be one of {SYNTHETIC_KINDS + GLOBAL_KINDS}; got {kind!r}.")
    if len(val_images) < 4:
        raise ValueError(f"synthetic_validation_auroc needs at least 4 validation images; got {len(val_images)}.")
    order = torch.randperm(len(val_images), generator=torch.Generator().manual_seed(seed))
    calib, held = val_images[order[: len(order) // 2]], val_images[order[len(order) // 2:]]
    if kind in GLOBAL_KINDS:
        anomalous = global_anomalies(held, kind, seed=seed)
    else:
        anomalous, _ = add_synthetic_anomalies(held, kind=kind, seed=seed)
    if image_size is not None:
        calib, held, anomalous = (resize_images(x, image_size) for x in (calib, held, anomalous))
    return calib, held, anomalous


def _normal_then_anomalous(held: torch.Tensor, anomalous: torch.Tensor) -> torch.Tensor:
    """Labels ``(N_held + N_anomalous,)``: 0 for the normal images, then 1 for the anomalous ones."""
    return torch.cat([torch.zeros(len(held)), torch.ones(len(anomalous))])


#: The synthetic anomalies :func:`checkpoint_aurocs` validates with unless told otherwise: strokes
#: (a local defect) and quarter turns (a global one).
VALIDATION_KINDS = ("stroke", "rotate")


def validation_column(kind: str) -> str:
    """The result column of the validation AUROC with synthetic anomalies of ``kind``.

    Introduced in the book's chapter *Results*. Strokes, the first
    validation anomaly, have the column ``val_auroc``; every other kind
    ``val_auroc_<kind>`` (``val_auroc_rotate``, ``val_auroc_splice``, ...).

    Args:
        kind: One of :data:`~ust.data.SYNTHETIC_KINDS` or :data:`~ust.data.GLOBAL_KINDS`.

    Returns:
        The column name.

    Raises:
        ValueError: An unknown ``kind``.
    """
    from .data import GLOBAL_KINDS, SYNTHETIC_KINDS

    if kind not in SYNTHETIC_KINDS + GLOBAL_KINDS:
        raise ValueError(f"kind must be one of {SYNTHETIC_KINDS + GLOBAL_KINDS}; got {kind!r}.")
    return "val_auroc" if kind == "stroke" else f"val_auroc_{kind}"


def checkpoint_aurocs(model, data, *, seed: int = 0, image_size: int | tuple[int, int] | None = None,
                      reduction: str = "mean", kinds: Sequence[str] = VALIDATION_KINDS) -> dict[str, float]:
    """Validation and test AUROCs of trained students, as the benchmarks in ``benchmarks/`` report them.

    Introduced in the book's chapter *Results* (training length, image size,
    score aggregation). The validation scores use training-class images
    only (:func:`synthetic_validation_auroc`, by default with synthetic
    strokes and with quarter turns); the test scores calibrate on all
    validation images and score the test images exactly as
    :func:`run_one_class` does. The model's normalisation is left as it was.

    Args:
        model: A trained :class:`~ust.model.StudentTeacher`.
        data: The :class:`~ust.data.OneClassData` it was trained on, at the
            images' own size.
        seed: Seeds the synthetic anomalies and the validation halves.
        image_size: Size the model works at (the images are resized to it),
            or ``None`` for their own.
        reduction: ``"mean"`` or ``"max"`` of the map (:func:`~ust.image_score`).
        kinds: The synthetic anomalies to validate with, each giving the
            column :func:`validation_column` names.

    Returns:
        ``{"val_auroc", "val_auroc_rotate", "auroc", "auroc_error", "auroc_variance"}``
        with the default ``kinds``: strokes, quarter turns, and the test
        AUROC of the combined score, the regression error and the
        predictive variance.

    Raises:
        ValueError: An unknown ``reduction`` or ``kind``, before any network runs.
    """
    return checkpoint_aurocs_by_reduction(model, data, seed=seed, image_size=image_size,
                                          reductions=(reduction,), kinds=kinds)[reduction]


def checkpoint_aurocs_by_reduction(model, data, *, seed: int = 0,
                                   image_size: int | tuple[int, int] | None = None,
                                   reductions: Sequence[str] = IMAGE_REDUCTIONS,
                                   kinds: Sequence[str] = VALIDATION_KINDS) -> dict[str, dict[str, float]]:
    """:func:`checkpoint_aurocs` for several reductions of the map, from one pass of the networks.

    Introduced in the book's chapter *Results* (score aggregation). Each
    map is computed once and reduced in every way asked, so measuring the
    mean and the maximum costs one scoring, not two; the values equal
    those of :func:`checkpoint_aurocs` with each ``reduction``.

    Args:
        model: A trained :class:`~ust.model.StudentTeacher`.
        data: The :class:`~ust.data.OneClassData` it was trained on, at the
            images' own size.
        seed: Seeds the synthetic anomalies and the validation halves.
        image_size: Size the model works at, or ``None`` for the images' own.
        reductions: Any of ``"mean"`` and ``"max"``.
        kinds: The synthetic anomalies to validate with.

    Returns:
        ``{reduction: {"val_auroc", "val_auroc_rotate", "auroc", "auroc_error", "auroc_variance"}}``
        with the default ``kinds`` (one ``validation_column(kind)`` per kind).

    Raises:
        ValueError: An empty or unknown ``reductions``, or an unknown
            ``kind``, before any network runs.
    """
    from .data import resize_images
    from .metrics import image_auroc

    _check_reductions(reductions)
    columns = {validation_column(kind): kind for kind in kinds}
    out: dict[str, dict[str, float]] = {r: {} for r in reductions}
    for column, kind in columns.items():
        calib, held, anomalous = _synthetic_validation_sets(data.val, kind, seed, image_size)
        with _calibrated([model], calib):
            scores = _scores_by_reduction(model, torch.cat([held, anomalous]), ("both",), dense=False,
                                          reductions=reductions)
        for r in reductions:
            out[r][column] = image_auroc(scores[r]["both"], _normal_then_anomalous(held, anomalous))
    val, test = (data.val, data.test) if image_size is None else (resize_images(x, image_size)
                                                                   for x in (data.val, data.test))
    with _calibrated([model], val):
        scores = _scores_by_reduction(model, test, SCORE_COMPONENTS, dense=False, reductions=reductions)
    for r in reductions:
        out[r].update({name: image_auroc(scores[r][c], data.test_labels)
                       for name, c in (("auroc", "both"), ("auroc_error", "error"), ("auroc_variance", "variance"))})
    return out


def validation_aurocs_by_scale(models: Sequence, val_images: torch.Tensor, *, kinds: Sequence[str] = VALIDATION_KINDS,
                               seed: int = 0) -> dict[str, dict[str, float]]:
    """Choose the scale without test data: :func:`synthetic_validation_auroc` of each scale and of their fusion.

    Introduced in the book's chapter *Results* (choosing the scale). For
    every scale and for the fusion of all of them (Eq. 13, the mean of the
    scales' image scores, as :func:`run_one_class` fuses), the AUROC of
    normal validation images against each kind of synthetic anomaly.
    Each scale is calibrated on the same half of the validation images and
    scores the other half once, then each kind's anomalies: the values
    equal :func:`synthetic_validation_auroc` of each model and of their
    :class:`~ust.model.MultiScaleStudentTeacher` (lattice maps, mean
    reduction, combined score), for a fraction of its cost.

    Args:
        models: Trained :class:`~ust.model.StudentTeacher` s, one per patch
            size, on the images' own size; their normalisation is left as it was.
        val_images: ``(N, C, H, W)`` anomaly-free validation images, ``N >= 4``.
        kinds: The synthetic anomalies (see :func:`synthetic_validation_auroc`).
        seed: Seeds the halves and the anomalies.

    Returns:
        ``{scale: {validation_column(kind): auroc}}`` with the scales as
        strings in the order of ``models`` (``"17"``, ``"33"``, ...), then
        :data:`FUSED` when there are several.

    Raises:
        ValueError: No models, a patch size twice, no ``kinds``, fewer than
            4 images or an unknown ``kind``, before any network runs.
    """
    from .metrics import image_auroc

    sizes = [m.patch_size for m in models]
    if not sizes or len(set(sizes)) != len(sizes):
        raise ValueError(f"validation_aurocs_by_scale needs one model per patch size; got patch sizes {sizes}.")
    if not kinds:
        raise ValueError(f"validation_aurocs_by_scale needs at least one kind of anomaly, e.g. {VALIDATION_KINDS}.")
    sets = {kind: _synthetic_validation_sets(val_images, kind, seed, None) for kind in kinds}
    calib, held, _ = next(iter(sets.values()))          # the halves depend on the seed only, not on the kind
    scores: dict[str, dict[str, torch.Tensor]] = {}
    with _calibrated(models, calib):
        for m in models:
            normal = m.image_scores(held)
            scores[str(m.patch_size)] = {kind: torch.cat([normal, m.image_scores(anomalous)])
                                         for kind, (_, _, anomalous) in sets.items()}
    if len(models) > 1:
        scores[FUSED] = {kind: torch.stack([s[kind] for s in scores.values()]).mean(0) for kind in kinds}
    labels = {kind: _normal_then_anomalous(held, anomalous) for kind, (_, _, anomalous) in sets.items()}
    return {scale: {validation_column(kind): image_auroc(s[kind], labels[kind]) for kind in kinds}
            for scale, s in scores.items()}


def _atomic_write(path: Path, write: Callable[[Any], None]) -> None:
    atomic_write(path, write)


def write_rows(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]],
               columns: Sequence[str] = COLUMNS) -> Path:
    """Write result rows to a CSV file atomically (temporary file, then rename).

    Introduced in the book's chapter *Results*.

    Args:
        path: The CSV file (folders are created).
        rows: Dictionaries with (at least) the keys ``columns``; ``None`` and
            NaN are written as empty cells.
        columns: The CSV's columns, in order (default: the benchmark's :data:`COLUMNS`).

    Returns:
        The path written. A reader never sees a half-written file.
    """
    path = Path(path)
    rows = list(rows)

    def write(handle):
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if is_missing(row.get(k)) else row.get(k)) for k in columns})

    _atomic_write(path, write)
    return path


def _parse(row: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = dict(row)
    for k in _INT_COLUMNS:
        out[k] = int(row[k])
    for k in _FLOAT_COLUMNS:
        out[k] = float(row[k])
    out["test_subset"] = row["test_subset"].strip().lower() in ("true", "1")
    out["stand_in_for"] = row["stand_in_for"] or None
    return out


def read_rows(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read a benchmark CSV written by :func:`write_rows` with typed values.

    Introduced in the book's chapter *Results*.

    Args:
        path: The CSV file.

    Returns:
        Rows with the keys :data:`COLUMNS`: ints, floats and bools as such,
        ``stand_in_for`` ``None`` when empty.

    Raises:
        ValueError: The file lacks some of the columns.
    """
    path = Path(path)
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path} lacks the columns {missing}; is it a ust benchmark CSV? Move it away or pass "
                             "another output path.")
        return [_parse(row) for row in reader]


def hardware_description(device: str | torch.device | None = None) -> str:
    """The device in words, for logs: the GPU's name, or the CPU, its vector instructions and the thread count.

    Introduced in the book's chapter *Results*. The vector instruction set
    PyTorch uses (``torch.backends.cpu.get_cpu_capability()``, e.g.
    ``AVX2`` or ``AVX512``) is named because it picks the CPU kernels, and
    with them the order of floating-point sums: runs repeat exactly only on
    CPUs with the same capability and thread count.
    """
    device = select_device(device)
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    cpu = _cpu_model() or platform.processor() or platform.machine() or "unknown CPU"
    return (f"{device.type}: {cpu} ({torch.backends.cpu.get_cpu_capability()}), "
            f"{torch.get_num_threads()} torch threads, {os.cpu_count()} CPUs")


def _cpu_model(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> str:
    """The CPU's model name: ``cpuinfo`` on Linux, ``sysctl`` on macOS, else ``""``.

    (Windows' :func:`platform.processor` already names the model; the caller
    falls back to it.)
    """
    try:
        with open(cpuinfo) as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if platform.system() == "Darwin":
        import subprocess

        try:
            found = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True,
                                   timeout=5, check=False)
            return found.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return ""


# --------------------------------------------------------------------------- benchmark

def _plain(value: Any) -> Any:
    """JSON-friendly copy: tuples -> lists, devices -> str, int keys -> str."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def run_benchmark(dataset: str | os.PathLike | DatasetSplits, classes: Iterable[int | str], scales: Iterable[int],
                  seeds: Iterable[int], out_csv: str | os.PathLike, *,
                  teachers: Mapping[int, PatchNet] | Callable[[int], PatchNet], resume: bool = True,
                  subset_seeds: Mapping[int, int] | None = None, data_root: str | os.PathLike | None = None,
                  notes: Mapping[str, Any] | None = None,
                  on_result: Callable[[list[dict[str, Any]], bool], None] | None = None,
                  **kwargs: Any) -> list[dict[str, Any]]:
    """Run the one-class benchmark over classes and seeds, saving as it goes.

    Introduced in the book's chapter *Results*.

    For every (class, seed) pair, :func:`run_one_class` runs all
    ``scales``; its rows are then added to ``out_csv`` by rewriting the
    whole file atomically (:func:`write_rows`), so the file is complete
    after every pair and never half written. Next to it,
    ``out_csv.with_suffix(".json")`` records the exact settings: the
    arguments, the ``ust`` and torch versions, the device, the date (and
    the settings of earlier runs that wrote to the same CSV).

    Args:
        dataset: A name or path for :func:`load_splits`, or splits already loaded.
        classes: Labels or names (see :func:`parse_classes`).
        scales: Patch sizes, e.g. ``(17, 33, 65)``.
        seeds: Seeds; each pair (class, seed) is one run.
        out_csv: The CSV file.
        teachers: ``{patch_size: PatchNet}``, or a function
            ``patch_size -> PatchNet`` (called once per scale, when first needed).
        resume: Skip the pairs whose rows (every scale and component asked
            for) are already in ``out_csv``. ``False`` runs them again and
            replaces their rows; rows of other pairs are always kept.
        subset_seeds: ``{seed: n}``: for these seeds score only a fixed
            stratified subset of ``n`` test images (the same for every
            class and seed, see ``subset_seed`` of :func:`run_one_class`),
            e.g. ``{1: 2000}`` for a cheaper second seed. Overrides
            ``max_test`` for those seeds.
        data_root: Data root(s) for :func:`load_splits`.
        notes: Extra facts for the JSON file (e.g. the teachers' checkpoint paths).
        on_result: Called as ``on_result(rows, resumed)`` with the rows of
            each pair as it finishes; ``resumed`` is ``True`` for a pair
            skipped because its rows were already in the CSV.
        **kwargs: Passed to :func:`run_one_class` (``n_students``,
            ``iterations``, ``batch_size``, ``lr``, ``image_size``,
            ``max_train``, ``max_test``, ``components``, ``dense``,
            ``device``, ``progress``, ``subset_seed``, ``scores_dir``: with
            it, a pair that lacks a scale trains only that scale).

    Returns:
        The rows of the requested pairs (read from the CSV or new), in the
        order class, seed, scale, component.

    Raises:
        ValueError: Unknown classes, patch sizes or arguments; an existing
            ``out_csv`` that is not a benchmark CSV.
    """
    splits = dataset if isinstance(dataset, DatasetSplits) else load_splits(dataset, data_root)
    labels = parse_classes(classes, splits.classes)
    scales = [int(p) for p in scales]
    seeds = [int(s) for s in seeds]
    bad = [p for p in scales if p not in PATCH_SIZES]
    if bad or not scales or len(set(scales)) != len(scales):
        raise ValueError(f"scales must be distinct patch sizes from {PATCH_SIZES}; got {scales}.")
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct integers, at least one; got {seeds}.")
    unknown = set(kwargs) - {"n_students", "iterations", "batch_size", "lr", "image_size", "max_train", "max_test",
                             "subset_seed", "components", "dense", "device", "progress", "scores_dir"}
    if unknown:
        raise ValueError(f"run_benchmark got unknown arguments {sorted(unknown)}; "
                         "see run_one_class for the valid ones.")
    subset_seeds = {int(k): int(v) for k, v in (subset_seeds or {}).items()}
    components = tuple(kwargs.get("components", SCORE_COMPONENTS))
    expected = {(str(p), c) for p in scales for c in components}
    if len(scales) > 1:
        expected |= {(FUSED, c) for c in components}
    out_csv = Path(out_csv)
    rows = read_rows(out_csv) if out_csv.is_file() else []

    from . import __version__

    json_path = out_csv.with_suffix(".json")
    earlier: list = []
    if json_path.is_file() and rows:
        try:
            old = json.loads(json_path.read_text())
            earlier = old.pop("earlier_runs", []) + [old]
        except (ValueError, OSError):
            earlier = []
    device = kwargs.get("device")
    if isinstance(teachers, Mapping):
        from .checkpoints import weights_sha256

        teacher_text = {p: {"patch_size": t.patch_size, "out_dim": t.out_dim, "in_channels": t.in_channels,
                            "weights_sha256": weights_sha256(t.state_dict())} if isinstance(t, PatchNet) else repr(t)
                        for p, t in teachers.items()}
    else:
        teacher_text = getattr(teachers, "__name__", repr(teachers))
    settings = {
        "arguments": _plain({"dataset": splits.name if isinstance(dataset, DatasetSplits) else os.fspath(dataset),
                             "classes": labels, "class_names": [splits.classes[c] for c in labels],
                             "scales": scales, "seeds": seeds, "out_csv": str(out_csv), "resume": resume,
                             "subset_seeds": subset_seeds, "data_root": data_root, "teachers": teacher_text,
                             **kwargs}),
        "data": splits.description,
        "notes": _plain(dict(notes or {})),
        "ust_version": __version__,
        "torch_version": torch.__version__,
        "device": str(select_device(device)),
        "hardware": hardware_description(device),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "earlier_runs": earlier,
    }
    _atomic_write(json_path, lambda h: json.dump(settings, h, indent=2))

    cache: dict[int, PatchNet] = {}

    def teacher(p: int) -> PatchNet:
        if p not in cache:
            if isinstance(teachers, Mapping):
                if p not in teachers:
                    raise ValueError(f"no teacher for patch size {p}: teachers has {sorted(teachers)}.")
                cache[p] = teachers[p]
            else:
                cache[p] = teachers(p)
        return cache[p]

    def key(row: Mapping[str, Any]) -> tuple:
        return row["dataset"], int(row["normal_class"]), int(row["seed"])

    result: list[dict[str, Any]] = []
    for label in labels:
        for seed in seeds:
            pair = (splits.name, label, seed)
            have = [r for r in rows if key(r) == pair]
            resumed = resume and expected <= {(r["scale"], r["components"]) for r in have}
            if resumed:
                done = [r for r in have if (r["scale"], r["components"]) in expected]
            else:
                options = dict(kwargs)
                if seed in subset_seeds:
                    options["max_test"] = subset_seeds[seed]
                done = run_one_class(splits, label, {p: teacher(p) for p in scales}, seed=seed, **options)
                rows = [r for r in rows if key(r) != pair] + done
                write_rows(out_csv, rows)
            result.extend(done)
            if on_result is not None:
                on_result(done, resumed)
    return result


# --------------------------------------------------------------------------- baselines

#: Columns of the baselines CSV.
BASELINE_COLUMNS = ("dataset", "normal_class", "class_name", "method", "auroc", "n_train", "n_test", "seconds",
                    "image_size", "stand_in_for")
#: The classical baselines, run on the same splits and preprocessing as the students.
BASELINE_METHODS = ("autoencoder", "knn_pixels", "knn_teacher", "knn_efficientnet")


def run_baselines_one_class(splits: DatasetSplits, normal_class: int | str, *, teacher: PatchNet | None = None,
                            methods: Sequence[str] = BASELINE_METHODS, image_size: int | None = None,
                            feature_size: int = 64, k: int = 2, ae_epochs: int = 20, seed: int = 0,
                            max_train: int | None = None, max_test: int | None = None, subset_seed: int = 0,
                            device: str | torch.device | None = None, progress: bool = False) -> list[dict]:
    """Classical baselines for one normal class, on the students' splits and preprocessing.

    Introduced in the book's chapter *Results*.

    * ``"autoencoder"``: reconstruction error of :class:`~ust.baselines.ConvAutoencoder`
      trained on the normal training images (the failure mode of chapter 1);
    * ``"knn_pixels"``: k-NN distance on the raw pixels;
    * ``"knn_teacher"``: k-NN on the teacher's descriptors averaged over the
      image (:func:`~ust.baselines.teacher_features`), L2-normalised;
    * ``"knn_efficientnet"``: k-NN on EfficientNet-Lite0's global features of
      the images resized to ``feature_size`` (:func:`~ust.baselines.backbone_features`),
      L2-normalised: the "pretrained feature matching" family.

    Args:
        splits: From :func:`load_splits`.
        normal_class: Label or name.
        teacher: The teacher for ``"knn_teacher"`` (its channel count sets the images' channels).
        methods: Which baselines.
        image_size: Resize as for the students (``None``: keep).
        feature_size: Input size of EfficientNet-Lite0.
        k: Neighbours for the k-NN scores.
        ae_epochs: Autoencoder epochs.
        seed: Seeds the validation draw (as :func:`run_one_class`) and the autoencoder.
        max_train, max_test, subset_seed: As for :func:`run_one_class`.
        device: See :func:`~ust.runtime.select_device`.
        progress: Show the autoencoder's progress bar.

    Returns:
        One row per method with the keys :data:`BASELINE_COLUMNS`.
    """
    from .baselines import backbone_features, knn_scores, reconstruction_scores, teacher_features, train_autoencoder
    from .metrics import image_auroc

    unknown = [m for m in methods if m not in BASELINE_METHODS]
    if unknown:
        raise ValueError(f"unknown baselines {unknown}; choose from {BASELINE_METHODS}.")
    if "knn_teacher" in methods and teacher is None:
        raise ValueError("the knn_teacher baseline needs teacher=... (e.g. ust.pretrained_teacher(33)).")
    device = select_device(device)
    label = resolve_class(splits.classes, normal_class)
    tested, subset = _test_subset(splits, max_test, subset_seed)
    channels = teacher.in_channels if teacher is not None else 3
    data = one_class_split(tested, label, image_size=image_size, channels=channels, max_train=max_train, seed=seed)
    common = dict(dataset=splits.name, normal_class=label, class_name=data.class_name, n_train=len(data.train),
                  n_test=len(data.test), image_size=f"{data.test.shape[-2]}x{data.test.shape[-1]}",
                  stand_in_for=splits.stand_in_for or "")
    rows = []
    for method in methods:
        start = time.perf_counter()
        if method == "autoencoder":
            model, _ = train_autoencoder(data.train, epochs=ae_epochs, seed=seed, device=device, progress=progress)
            scores = reconstruction_scores(model, data.test)
        elif method == "knn_pixels":
            scores = knn_scores(data.train, data.test, k=k, normalize=False)
        elif method == "knn_teacher":
            net = teacher.to(device)
            scores = knn_scores(teacher_features(net, data.train), teacher_features(net, data.test), k=k)
            teacher.cpu()
        else:
            from .backbones import load_backbone

            net = load_backbone("efficientnet_lite0", device)
            scores = knn_scores(backbone_features(data.train, net, image_size=feature_size),
                                backbone_features(data.test, net, image_size=feature_size), k=k)
        rows.append({**common, "method": method, "auroc": image_auroc(scores, data.test_labels),
                     "seconds": time.perf_counter() - start})
    return rows


def run_baselines(dataset: str | os.PathLike | DatasetSplits, classes: Iterable[int | str], out_csv,
                  *, resume: bool = True, data_root=None, **kwargs) -> list[dict]:
    """:func:`run_baselines_one_class` for several classes, saved to ``out_csv`` after each class.

    Introduced in the book's chapter *Results*. Classes already in the CSV
    (with every method asked for) are skipped when ``resume`` is true.
    """
    splits = dataset if isinstance(dataset, DatasetSplits) else load_splits(dataset, data_root)
    labels = parse_classes(classes, splits.classes)
    methods = tuple(kwargs.get("methods", BASELINE_METHODS))
    out_csv = Path(out_csv)
    rows = []
    if out_csv.is_file():
        with out_csv.open(newline="", encoding="utf-8") as handle:
            rows = [dict(r, normal_class=int(r["normal_class"]), auroc=float(r["auroc"]))
                    for r in csv.DictReader(handle)]
    result = []
    for label in labels:
        have = [r for r in rows if r["dataset"] == splits.name and r["normal_class"] == label]
        if resume and set(methods) <= {r["method"] for r in have}:
            result.extend(r for r in have if r["method"] in methods)
            continue
        done = run_baselines_one_class(splits, label, **kwargs)
        rows = [r for r in rows if not (r["dataset"] == splits.name and r["normal_class"] == label
                                        and r["method"] in methods)] + done

        def write(handle, rows=rows):
            writer = csv.DictWriter(handle, fieldnames=list(BASELINE_COLUMNS))
            writer.writeheader()
            writer.writerows({c: r[c] for c in BASELINE_COLUMNS} for r in rows)

        _atomic_write(out_csv, write)
        result.extend(done)
    return result


# --------------------------------------------------------------------------- summary

def _std(values: list[float]) -> float:
    """Sample standard deviation (n - 1); NaN for fewer than two values."""
    if len(values) < 2:
        return math.nan
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def summarize(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard deviation of the AUROC over seeds, per class and over classes.

    Introduced in the book's chapter *Results*.

    Per (dataset, class, scale, components): ``auroc_mean`` and
    ``auroc_std`` over the seeds (sample standard deviation, ``n - 1``;
    NaN with one seed). Then per (dataset, scale, components) one row with
    ``normal_class = class_name = "mean"``: ``auroc_mean`` is the mean over
    classes of the per-class means (the paper's last column), and
    ``auroc_std`` the standard deviation over seeds of the mean over
    classes, using the seeds that every class has.

    Args:
        rows: Rows from :func:`run_benchmark` or :func:`read_rows`.

    Returns:
        Rows with keys ``dataset``, ``normal_class``, ``class_name``,
        ``scale``, ``components``, ``auroc_mean``, ``auroc_std``,
        ``n_seeds``, ``n_classes``, in the order the groups first appear;
        each dataset's "mean" rows follow its classes.
    """
    groups: dict[tuple, dict[int, float]] = {}
    names: dict[tuple, str] = {}
    for row in rows:
        k = (row["dataset"], int(row["normal_class"]), str(row["scale"]), row["components"])
        groups.setdefault(k, {})[int(row["seed"])] = float(row["auroc"])
        names[k[:2]] = str(row["class_name"])
    out: list[dict[str, Any]] = []
    overall: dict[tuple, dict[int, dict[int, float]]] = {}
    for (dataset, label, scale, comp), by_seed in groups.items():
        values = list(by_seed.values())
        out.append({"dataset": dataset, "normal_class": label, "class_name": names[(dataset, label)], "scale": scale,
                    "components": comp, "auroc_mean": sum(values) / len(values), "auroc_std": _std(values),
                    "n_seeds": len(values), "n_classes": 1})
        overall.setdefault((dataset, scale, comp), {})[label] = by_seed
    for (dataset, scale, comp), by_class in overall.items():
        means = [sum(s.values()) / len(s) for s in by_class.values()]
        common = set.intersection(*(set(s) for s in by_class.values()))
        per_seed = [sum(s[seed] for s in by_class.values()) / len(by_class) for seed in sorted(common)]
        summary = {"dataset": dataset, "normal_class": "mean", "class_name": "mean", "scale": scale,
                   "components": comp, "auroc_mean": sum(means) / len(means), "auroc_std": _std(per_seed),
                   "n_seeds": len(common), "n_classes": len(by_class)}
        last = max(i for i, r in enumerate(out) if r["dataset"] == dataset)
        out.insert(last + 1, summary)
    return out
