"""Anomaly scores from the students' predictions.

Introduced in the book's chapters *Uncertainty* (error, variance, their
normalisation) and *Multi-scale fusion* (:func:`fuse_scales`).

Bergmann et al. (2020), Sec. 3.2 ("Anomaly scoring functions") and Sec. 3.3
("Multi-scale anomaly segmentation"). With ``M`` students predicting
:math:`\\mu^{S_i}_{(r,c)}` and the normalised teacher descriptor
:math:`\\tilde{\\mathbf y}_{(r,c)}`:

* ensemble mean (Eq. 9): :math:`\\mu_{(r,c)} = \\frac1M \\sum_i \\mu^{S_i}_{(r,c)}`;
* regression error (Eq. 10): :math:`e_{(r,c)} = \\lVert \\mu_{(r,c)} - \\tilde{\\mathbf y}_{(r,c)} \\rVert_2^2`;
* predictive variance (Eq. 11):
  :math:`v_{(r,c)} = \\frac1M \\sum_i \\lVert\\mu^{S_i}_{(r,c)}\\rVert_2^2 - \\lVert\\mu_{(r,c)}\\rVert_2^2`;
* combined score (Eq. 12): :math:`\\tilde e + \\tilde v`, each standardised
  with mean and standard deviation measured on anomaly-free validation
  images;
* multi-scale score (Eq. 13): the mean of the combined scores over the
  scales.

Student predictions are stacked as ``(M, B, d, H, W)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

import torch

from ._checks import check_same_shape

__all__ = [
    "ensemble_mean",
    "regression_error",
    "predictive_variance",
    "ScoreNormalization",
    "anomaly_score",
    "fuse_scales",
    "image_score",
    "SCORE_COMPONENTS",
    "IMAGE_REDUCTIONS",
]

#: Which scores :func:`anomaly_score` combines (the paper's ablation).
SCORE_COMPONENTS = ("both", "error", "variance")
#: How :func:`image_score` turns a map into one number per image.
IMAGE_REDUCTIONS = ("mean", "max")


def _check_students(predictions: torch.Tensor) -> None:
    if not isinstance(predictions, torch.Tensor) or predictions.dim() != 5:
        shape = tuple(predictions.shape) if isinstance(predictions, torch.Tensor) else type(predictions).__name__
        raise ValueError(f"student predictions must be stacked as (M, B, d, H, W); got {shape}. "
                         "Use torch.stack([student(x) for student in students]).")


def ensemble_mean(predictions: torch.Tensor) -> torch.Tensor:
    """Mean of the students' predictions (Sec. 3.2, Eq. 9).

    Args:
        predictions: ``(M, B, d, H, W)``.

    Returns:
        ``(B, d, H, W)``.
    """
    _check_students(predictions)
    return predictions.mean(0)


def regression_error(predictions: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Regression error :math:`e_{(r,c)}` (Sec. 3.2, Eq. 10).

    Squared distance between the students' mean prediction and the
    normalised teacher descriptor.

    Args:
        predictions: ``(M, B, d, H, W)`` student outputs.
        target: ``(B, d, H, W)`` normalised teacher descriptors.

    Returns:
        ``(B, H, W)``, non-negative.
    """
    mean = ensemble_mean(predictions)
    check_same_shape(mean, target, ("students' mean prediction", "target"))
    return (mean - target).square().sum(1)


def predictive_variance(predictions: torch.Tensor) -> torch.Tensor:
    """Predictive variance :math:`v_{(r,c)}` (Sec. 3.2, Eq. 11).

    The paper's form :math:`\\frac1M\\sum_i\\lVert\\mu_i\\rVert^2 - \\lVert\\bar\\mu\\rVert^2`
    equals :math:`\\frac1M\\sum_i\\lVert\\mu_i - \\bar\\mu\\rVert^2` exactly; we
    compute the second, which cannot turn negative through floating-point
    cancellation (the first can, by about ``1e-6`` relative).

    Args:
        predictions: ``(M, B, d, H, W)`` student outputs.

    Returns:
        ``(B, H, W)``, non-negative; 0 where all students agree (and for
        ``M = 1``).
    """
    mean = ensemble_mean(predictions)
    return (predictions - mean).square().sum(2).mean(0)


@dataclass(frozen=True)
class ScoreNormalization:
    """Mean and standard deviation of ``e`` and ``v`` on validation images.

    Bergmann et al. (2020), Sec. 3.2: "we compute the means
    :math:`e_\\mu, v_\\mu` and standard deviations :math:`e_\\sigma, v_\\sigma`
    of all :math:`e_{(r,c)}` and :math:`v_{(r,c)}` over a validation set
    containing anomaly-free images".

    Attributes:
        error_mean, error_std, variance_mean, variance_std: The four numbers.
    """

    error_mean: float
    error_std: float
    variance_mean: float
    variance_std: float

    @classmethod
    def fit(cls, errors: Iterable[torch.Tensor] | torch.Tensor,
            variances: Iterable[torch.Tensor] | torch.Tensor) -> "ScoreNormalization":
        """Measure the statistics over all pixels of the validation maps.

        Args:
            errors: ``(B, H, W)`` maps from :func:`regression_error`, or an
                iterable of such batches.
            variances: Likewise from :func:`predictive_variance`.

        Returns:
            The fitted normalisation.

        Raises:
            ValueError: With fewer than two pixels.
        """
        def stats(maps) -> tuple[float, float]:
            flat = torch.cat([m.detach().reshape(-1).to(torch.float64).cpu() for m in
                              ([maps] if isinstance(maps, torch.Tensor) else maps)])
            if flat.numel() < 2:
                raise ValueError("ScoreNormalization.fit needs validation maps with at least two pixels.")
            return flat.mean().item(), flat.std().item()

        (e_mean, e_std), (v_mean, v_std) = stats(errors), stats(variances)
        return cls(e_mean, e_std, v_mean, v_std)

    def to_dict(self) -> dict[str, float]:
        """Plain dictionary (for checkpoints and JSON)."""
        return asdict(self)


def anomaly_score(error: torch.Tensor, variance: torch.Tensor, normalization: ScoreNormalization,
                  components: str = "both", eps: float = 1e-12) -> torch.Tensor:
    """Combined anomaly score :math:`\\tilde e + \\tilde v` (Sec. 3.2, Eq. 12).

    .. math::

        \\tilde e_{(r,c)} + \\tilde v_{(r,c)}
        = \\frac{e_{(r,c)} - e_\\mu}{e_\\sigma} + \\frac{v_{(r,c)} - v_\\mu}{v_\\sigma}

    Args:
        error: ``(B, H, W)`` regression error.
        variance: ``(B, H, W)`` predictive variance.
        normalization: Statistics from anomaly-free validation images.
        components: ``"both"`` (the paper's score), ``"error"`` (only
            :math:`\\tilde e`) or ``"variance"`` (only :math:`\\tilde v`) for
            the ablation.
        eps: Floor for the standard deviations.

    Returns:
        ``(B, H, W)`` score map; 0 is an average anomaly-free pixel.
    """
    if components not in SCORE_COMPONENTS:
        raise ValueError(f"components must be one of {SCORE_COMPONENTS}; got {components!r}.")
    check_same_shape(error, variance, ("error", "variance"))
    n = normalization
    e = (error - n.error_mean) / max(n.error_std, eps)
    v = (variance - n.variance_mean) / max(n.variance_std, eps)
    return {"both": e + v, "error": e, "variance": v}[components]


def fuse_scales(scores: Sequence[torch.Tensor]) -> torch.Tensor:
    """Multi-scale anomaly score (Sec. 3.3, Eq. 13): the mean over scales.

    .. math:: \\frac1L \\sum_{l=1}^{L} \\left(\\tilde e^{(l)}_{(r,c)} + \\tilde v^{(l)}_{(r,c)}\\right)

    Args:
        scores: ``L`` combined score maps ``(B, H, W)`` of the same shape,
            one per patch size.

    Returns:
        ``(B, H, W)``; with one scale, that scale's map unchanged.
    """
    scores = list(scores)
    if not scores:
        raise ValueError("fuse_scales needs at least one score map.")
    for i, s in enumerate(scores[1:], start=1):
        check_same_shape(scores[0], s, ("scores[0]", f"scores[{i}]"))
    if len(scores) == 1:
        return scores[0]
    return torch.stack(scores).mean(0)


def image_score(score_map: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """One anomaly score per image from a pixel score map.

    Choice documented here: for one-class novelty detection (MNIST,
    CIFAR-10) the whole image belongs to another class, so the default is
    the **mean** over pixels, which uses every position's evidence and is
    robust to a single noisy pixel; ``"max"`` suits small local defects.

    Args:
        score_map: ``(B, H, W)``.
        reduction: ``"mean"`` or ``"max"``.

    Returns:
        ``(B,)``.
    """
    if reduction not in IMAGE_REDUCTIONS:
        raise ValueError(f"reduction must be one of {IMAGE_REDUCTIONS}; got {reduction!r}.")
    if score_map.dim() != 3:
        raise ValueError(f"score_map must be (B, H, W); got shape {tuple(score_map.shape)}.")
    flat = score_map.flatten(1)
    return flat.mean(1) if reduction == "mean" else flat.amax(1)
