"""Evaluation metrics: image AUROC, pixel AUROC and the PRO curve.

Introduced in the book's chapters *Introduction* (image AUROC and the ROC
curve for one-class novelty detection) and *Multi-scale fusion* (pixel
AUROC and PRO for anomaly segmentation on MVTec AD).

Every function accepts numpy arrays or torch tensors on any device and
returns plain Python floats or numpy arrays. Label ``1`` (or ``True``)
means *anomalous*, and a higher score means *more anomalous*; a pixel or
image is predicted anomalous at threshold ``t`` when its score is
``>= t`` (the convention of :func:`sklearn.metrics.roc_curve`).

ROC-based numbers come from scikit-learn. The **PRO** curve (per-region
overlap; Bergmann et al., MVTec AD, CVPR 2019, and Bergmann et al. 2020,
Sec. 4.2) has no scikit-learn counterpart and is implemented here:

* the ground-truth masks are split into connected components
  (*regions*) with :func:`scipy.ndimage.label`, **8-connectivity** inside
  each image (as the MVTec AD evaluation code) and never across images;
* at threshold ``t``, PRO is the mean over **all** regions of all images
  of ``|region & (score >= t)| / |region|``, so a small defect counts as
  much as a large one; FPR is the fraction of all normal (non-mask) pixels
  of all images with ``score >= t``;
* the curve is integrated over FPR from 0 to ``max_fpr`` (default 0.3)
  with the trapezoidal rule, interpolating linearly at exactly ``max_fpr``,
  and divided by ``max_fpr``: a perfect score map gets 1.0.

The curve is computed **exactly**: all pixel scores are sorted once and
every unique score value is a threshold (``num_thresholds=None``), so the
cost is one sort of ``N * H * W`` numbers instead of one labelling per
threshold. ``num_thresholds=n`` evaluates ``n`` evenly spaced thresholds
from the largest to the smallest score instead; each of those points is
exact too, only the curve between them is coarser.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage
from sklearn import metrics as _sk

__all__ = ["image_auroc", "roc_curve", "pixel_auroc", "pro_curve", "pro_auc", "PRO_CONNECTIVITY"]

#: Connectivity of ground-truth regions: 8 (diagonal neighbours belong to the same region).
PRO_CONNECTIVITY = 8


# --------------------------------------------------------------------------- input checks

def _to_numpy(x, name: str) -> np.ndarray:
    """``x`` as a numpy array (a torch tensor is detached and copied to the CPU)."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    try:
        return np.asarray(x)
    except Exception as err:  # pragma: no cover - numpy's own message is kept as the cause
        raise ValueError(f"{name} must be a numpy array or a torch tensor; got {type(x).__name__}.") from err


def _check_scores(scores: np.ndarray, name: str) -> np.ndarray:
    if scores.dtype == bool or not np.issubdtype(scores.dtype, np.number):
        raise ValueError(f"{name} must be numbers (higher = more anomalous); got dtype {scores.dtype}.")
    if np.isnan(scores).any():
        raise ValueError(f"{name} contain NaN; check the model's output (e.g. a division by a zero "
                         "standard deviation) before evaluating.")
    return scores


def _check_labels(labels: np.ndarray, name: str) -> np.ndarray:
    """Labels as a boolean array; accepts ``bool`` or numbers that are all 0 or 1."""
    if labels.dtype == bool:
        return labels
    if not np.issubdtype(labels.dtype, np.number) or not np.isin(labels, (0, 1)).all():
        found = np.unique(labels)[:5] if np.issubdtype(labels.dtype, np.number) else labels.dtype
        raise ValueError(f"{name} must be 0 (normal) or 1 (anomalous), or bool; found {found}. "
                         "For masks stored as 0/255 images use mask > 0.")
    return labels.astype(bool)


def _check_both_classes(labels: np.ndarray, what: str) -> None:
    n_pos = int(labels.sum())
    if n_pos == 0 or n_pos == labels.size:
        only = "anomalous (1)" if n_pos else "normal (0)"
        raise ValueError(f"AUROC needs both normal (0) and anomalous (1) {what}; got only {only} "
                         f"({labels.size} {what}). Evaluate on a test set that contains both.")


def _image_inputs(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    s = _check_scores(_to_numpy(scores, "scores"), "scores")
    y = _to_numpy(labels, "labels")
    if s.ndim != 1 or y.ndim != 1:
        raise ValueError(f"scores and labels must be 1-D, one entry per image; got shapes {s.shape} and "
                         f"{y.shape}. Reduce score maps first, e.g. ust.image_score(maps).")
    if s.shape != y.shape:
        raise ValueError(f"scores has {s.shape[0]} entries but labels has {y.shape[0]}; give one label per "
                         "score.")
    y = _check_labels(y, "labels")
    _check_both_classes(y, "examples")
    return s, y


def _map_inputs(score_maps, masks) -> tuple[np.ndarray, np.ndarray]:
    s = _check_scores(_to_numpy(score_maps, "score_maps"), "score_maps")
    m = _to_numpy(masks, "masks")
    for arr, name in ((s, "score_maps"), (m, "masks")):
        if arr.ndim != 3:
            hint = f" For a single image use {name}[None]." if arr.ndim == 2 else ""
            raise ValueError(f"{name} must be 3-D (N, H, W); got shape {arr.shape}.{hint}")
    if s.shape != m.shape:
        raise ValueError(f"score_maps has shape {s.shape} but masks has shape {m.shape}; they must match. "
                         "Upsample the score maps to the mask size (e.g. F.interpolate) first.")
    return s, _check_labels(m, "masks")


# --------------------------------------------------------------------------- image level

def image_auroc(scores, labels) -> float:
    """Area under the ROC curve of image-level scores.

    Args:
        scores: ``(N,)`` anomaly scores, higher = more anomalous.
        labels: ``(N,)`` 1 (or ``True``) for anomalous images, 0 for normal.

    Returns:
        AUROC in ``[0, 1]``: the probability that a random anomalous image
        scores higher than a random normal one (ties count one half).

    Raises:
        ValueError: If the inputs are not 1-D of equal length, labels are
            not 0/1, or only one class is present.

    Example:
        >>> image_auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
        0.75
    """
    s, y = _image_inputs(scores, labels)
    return float(_sk.roc_auc_score(y, s))


def roc_curve(scores, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve of image-level scores (:func:`sklearn.metrics.roc_curve`).

    Every distinct score is a threshold (``drop_intermediate=False``), so
    the points can be checked one by one.

    Args:
        scores: ``(N,)`` anomaly scores, higher = more anomalous.
        labels: ``(N,)`` 1 for anomalous, 0 for normal.

    Returns:
        ``(fpr, tpr, thresholds)``, each ``(T,)``: at ``thresholds[i]`` the
        images with ``score >= thresholds[i]`` are predicted anomalous.
        ``thresholds[0]`` is ``inf`` (nothing predicted, the point (0, 0)).

    Raises:
        ValueError: As :func:`image_auroc`.
    """
    s, y = _image_inputs(scores, labels)
    fpr, tpr, thresholds = _sk.roc_curve(y, s, drop_intermediate=False)
    return fpr, tpr, thresholds


# --------------------------------------------------------------------------- pixel level

def pixel_auroc(score_maps, masks) -> float:
    """Pixel-wise AUROC: every pixel of every image is one example.

    Args:
        score_maps: ``(N, H, W)`` anomaly scores.
        masks: ``(N, H, W)`` ground truth, ``True``/1 on anomalous pixels.

    Returns:
        AUROC in ``[0, 1]`` over all ``N * H * W`` pixels.

    Raises:
        ValueError: On shape mismatch, non-binary masks, or when the masks
            are all normal or all anomalous.
    """
    s, m = _map_inputs(score_maps, masks)
    _check_both_classes(m, "pixels")
    return float(_sk.roc_auc_score(m.ravel(), s.ravel()))


def _label_regions(masks: np.ndarray) -> tuple[np.ndarray, int]:
    """Connected components of ``(N, H, W)`` masks, 8-connected within each image only."""
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = True  # the full 3x3 neighbourhood in-plane, nothing across the batch axis
    regions, n_regions = ndimage.label(masks, structure=structure)
    return regions, int(n_regions)


def pro_curve(score_maps, masks, max_fpr: float = 0.3,
              num_thresholds: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-region overlap (PRO) against false positive rate (MVTec AD).

    For a threshold ``t`` (pixels with ``score >= t`` are predicted
    anomalous), with regions :math:`C_k` the connected components of all
    masks (8-connected, within each image), :math:`K` their number and
    :math:`P_t` the predicted pixels:

    .. math:: \\mathrm{PRO}(t) = \\frac1K \\sum_k \\frac{|C_k \\cap P_t|}{|C_k|}, \\qquad
              \\mathrm{FPR}(t) = \\frac{|P_t \\setminus \\bigcup_k C_k|}{\\#\\text{normal pixels}}.

    Args:
        score_maps: ``(N, H, W)`` anomaly scores (higher = more anomalous).
        masks: ``(N, H, W)`` ground truth, ``True``/1 on anomalous pixels.
            Images without any anomaly may be included; they contribute
            normal pixels (to the FPR) only.
        max_fpr: Keep the curve up to this FPR, in ``(0, 1]``; the last
            point is interpolated linearly at exactly ``max_fpr``. ``1.0``
            gives the whole curve.
        num_thresholds: ``None`` (default) for the exact curve, one point
            per unique score value. An integer ``n >= 2`` instead evaluates
            ``n`` evenly spaced thresholds from the largest to the smallest
            score (smaller arrays for plotting very large test sets).

    Returns:
        ``(fprs, pros)``, float64 arrays of equal length, both
        non-decreasing, starting at ``(0, 0)`` (threshold ``+inf``) and
        ending at FPR ``max_fpr``. Several points may share an FPR (a
        threshold that adds only anomalous pixels).

    Raises:
        ValueError: On shape mismatch, non-binary masks, no anomalous pixel
            at all, no normal pixel at all, or an invalid ``max_fpr`` /
            ``num_thresholds``.
    """
    if not 0 < max_fpr <= 1:
        raise ValueError(f"max_fpr must be in (0, 1]; got {max_fpr}. The usual choice is 0.3.")
    if num_thresholds is not None and (int(num_thresholds) != num_thresholds or num_thresholds < 2):
        raise ValueError(f"num_thresholds must be None (exact curve) or an integer >= 2; got {num_thresholds}.")
    s, m = _map_inputs(score_maps, masks)
    regions, n_regions = _label_regions(m)
    if n_regions == 0:
        raise ValueError("PRO needs at least one anomalous region, but every mask is empty. Evaluate on a "
                         "test set that contains defective images with their ground-truth masks.")
    flat_regions = regions.ravel()
    areas = np.bincount(flat_regions, minlength=n_regions + 1)  # areas[0]: number of normal pixels
    n_normal = int(areas[0])
    if n_normal == 0:
        raise ValueError("PRO needs normal pixels for its false positive rate, but every pixel is in a mask. "
                         "Include anomaly-free images or pixels in the evaluation.")

    # Sweep all thresholds at once: sort the scores in decreasing order; the
    # pixels predicted at threshold t are a prefix of that order.
    flat_scores = s.ravel()
    order = np.argsort(-flat_scores.astype(np.float64))
    sorted_scores = flat_scores[order]
    sorted_regions = flat_regions[order]
    false_positives = np.cumsum(sorted_regions == 0)  # integers: exact
    weight = 1.0 / areas.astype(np.float64)
    weight[0] = 0.0
    overlap = np.cumsum(weight[sorted_regions])  # sum over regions of |C_k & P_t| / |C_k|

    if num_thresholds is None:
        # the last pixel of every run of equal scores: all pixels >= that score are in
        ends = np.flatnonzero(np.append(sorted_scores[1:] != sorted_scores[:-1], True))
    else:
        thresholds = np.linspace(sorted_scores[0], sorted_scores[-1], int(num_thresholds))
        # number of pixels with score >= t, found in the increasing copy of the sorted scores
        ascending = sorted_scores[::-1].astype(np.float64)
        counts = ascending.size - np.searchsorted(ascending, thresholds, side="left")
        ends = counts - 1
    fprs = np.concatenate([[0.0], false_positives[ends] / n_normal])
    pros = np.concatenate([[0.0], np.minimum(overlap[ends] / n_regions, 1.0)])
    return _truncate(fprs, pros, max_fpr)


def _truncate(fprs: np.ndarray, pros: np.ndarray, max_fpr: float) -> tuple[np.ndarray, np.ndarray]:
    """Keep the points with FPR <= max_fpr and end with the point interpolated at max_fpr."""
    last = int(np.searchsorted(fprs, max_fpr, side="right")) - 1  # last point with fpr <= max_fpr
    if fprs[last] == max_fpr or last == fprs.size - 1:
        return fprs[: last + 1], pros[: last + 1]
    f0, f1, p0, p1 = fprs[last], fprs[last + 1], pros[last], pros[last + 1]
    p_at = p0 + (p1 - p0) * (max_fpr - f0) / (f1 - f0)
    return np.append(fprs[: last + 1], max_fpr), np.append(pros[: last + 1], p_at)


def pro_auc(score_maps, masks, max_fpr: float = 0.3) -> float:
    """Normalised area under the PRO curve up to ``max_fpr`` (MVTec AD).

    The exact curve of :func:`pro_curve`, integrated with the trapezoidal
    rule from FPR 0 to ``max_fpr`` and divided by ``max_fpr``, so that a
    perfect score map (every anomalous pixel above every normal one) scores
    1.0. Bergmann et al. (2020) report it with ``max_fpr = 0.3``.

    Args:
        score_maps: ``(N, H, W)`` anomaly scores.
        masks: ``(N, H, W)`` ground truth, ``True``/1 on anomalous pixels.
        max_fpr: Upper integration limit in ``(0, 1]``.

    Returns:
        A float in ``[0, 1]``.

    Raises:
        ValueError: As :func:`pro_curve`.
    """
    fprs, pros = pro_curve(score_maps, masks, max_fpr=max_fpr)
    area = float(np.sum(np.diff(fprs) * (pros[1:] + pros[:-1]) / 2))
    return area / max_fpr
