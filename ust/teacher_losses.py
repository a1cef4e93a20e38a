"""Losses that pretrain the teacher on natural image patches.

Introduced in the book's chapter *Teacher losses*.

Bergmann et al. (2020), Sec. 3.1 ("Learning Local Patch Descriptors"), train
the teacher :math:`\\hat T` with up to three losses; each is one function here:

* :func:`knowledge_distillation_loss`: :math:`\\mathcal L_k` (Eq. 1), regress
  the features of a pretrained network through a linear decoder;
* :func:`metric_learning_loss`: :math:`\\mathcal L_m` (Eqs. 2-4), a triplet
  loss with the harder of two negative distances;
* :func:`descriptor_compactness_loss`: :math:`\\mathcal L_c` (Eq. 5), the
  off-diagonal entries of the descriptors' ``d x d`` correlation matrix;
* :func:`teacher_loss`: their weighted sum (Eq. 6).

Two measurements of :math:`\\mathcal L_k` judge a trained teacher (chapter
*Results*, "Is the teacher the bottleneck?"):

* :func:`distillation_floor`: the least :math:`\\mathcal L_k` that any
  ``d``-dimensional descriptor with an affine decoder can reach on given
  features (the ceiling that ``d`` alone sets);
* :func:`refit_distillation_loss`: :math:`\\mathcal L_k` of a teacher's
  descriptors with the best affine decoder refitted by least squares (the
  decoder is dropped after pretraining).

Descriptors are ``(B, d)`` matrices (use :meth:`ust.PatchNet.describe`, or
pass the ``(B, d, 1, 1)`` network output; dense maps ``(B, d, H, W)`` are
accepted where noted, each pixel counting as one descriptor).
"""

from __future__ import annotations

import torch
from torch import nn

from ._checks import check_descriptors, check_same_shape

__all__ = [
    "DistillationDecoder",
    "knowledge_distillation_loss",
    "metric_learning_loss",
    "correlation_matrix",
    "descriptor_compactness_loss",
    "teacher_loss",
    "distillation_floor",
    "refit_distillation_loss",
    "COMPACTNESS_PENALTIES",
]

#: What :func:`descriptor_compactness_loss` sums over the off-diagonal correlations.
COMPACTNESS_PENALTIES = ("abs", "square", "signed")


class DistillationDecoder(nn.Module):
    """The decoder :math:`D` of the distillation loss: one fully connected layer.

    Maps a teacher descriptor ``(B, d)`` to the feature size of the
    pretrained network ``P`` (512 for ResNet-18, 1280 for EfficientNet-Lite0).
    Used only during pretraining; discarded afterwards (Sec. 3.1).

    Args:
        out_dim: Descriptor dimension ``d``.
        feature_dim: Feature dimension of ``P``.
    """

    def __init__(self, out_dim: int, feature_dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(out_dim, feature_dim)

    def forward(self, descriptors: torch.Tensor) -> torch.Tensor:
        """``(B, d)`` (or ``(B, d, 1, 1)``) -> ``(B, feature_dim)``."""
        return self.linear(descriptors.flatten(1))


def knowledge_distillation_loss(decoded: torch.Tensor, pretrained_features: torch.Tensor) -> torch.Tensor:
    """Knowledge distillation loss :math:`\\mathcal L_k` (Sec. 3.1, Eq. 1).

    .. math:: \\mathcal L_k(\\hat T) = \\lVert D(\\hat T(\\mathbf p)) - P(\\mathbf p) \\rVert_2^2

    averaged over the patches of the minibatch.

    Args:
        decoded: ``(B, F)`` decoded teacher descriptors ``D(T(p))``.
        pretrained_features: ``(B, F)`` features ``P(p)`` of the same patches.

    Returns:
        Scalar: mean over the batch of the squared Euclidean distance.

    Raises:
        ValueError: If the shapes differ or are not 2-D.
    """
    check_same_shape(decoded, pretrained_features, ("decoded", "pretrained_features"))
    if decoded.dim() != 2:
        raise ValueError(f"decoded and pretrained_features must be (B, F); got shape {tuple(decoded.shape)}.")
    return (decoded - pretrained_features).square().sum(1).mean()


def metric_learning_loss(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor,
                         margin: float = 1.0) -> torch.Tensor:
    """Metric learning (triplet) loss :math:`\\mathcal L_m` (Sec. 3.1, Eqs. 2-4).

    With squared distances :math:`\\delta^+ = \\lVert \\hat T(\\mathbf p) - \\hat T(\\mathbf p^+)\\rVert^2` and
    :math:`\\delta^- = \\min\\{\\lVert \\hat T(\\mathbf p) - \\hat T(\\mathbf p^-)\\rVert^2,
    \\lVert \\hat T(\\mathbf p^+) - \\hat T(\\mathbf p^-)\\rVert^2\\}` (the harder of the
    anchor-negative and positive-negative distances),

    .. math:: \\mathcal L_m(\\hat T) = \\max\\{0,\\ \\delta + \\delta^+ - \\delta^-\\}

    averaged over the triplets.

    Args:
        anchor: ``(B, d)`` descriptors of patches ``p``.
        positive: ``(B, d)`` descriptors of ``p+`` (``p`` slightly translated
            plus noise).
        negative: ``(B, d)`` descriptors of ``p-`` (a patch of another image).
        margin: :math:`\\delta > 0`.

    Returns:
        Scalar loss.

    Raises:
        ValueError: Mismatched shapes or a negative margin.
    """
    anchor, positive, negative = (check_descriptors(t, n) for t, n in
                                  ((anchor, "anchor"), (positive, "positive"), (negative, "negative")))
    check_same_shape(anchor, positive, ("anchor", "positive"))
    check_same_shape(anchor, negative, ("anchor", "negative"))
    if margin < 0:
        raise ValueError(f"margin must be >= 0; got {margin}.")
    d_pos = (anchor - positive).square().sum(1)
    d_neg = torch.minimum((anchor - negative).square().sum(1), (positive - negative).square().sum(1))
    return torch.clamp(margin + d_pos - d_neg, min=0).mean()


def correlation_matrix(descriptors: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Pearson correlation between the ``d`` descriptor channels.

    .. math:: c_{ij} = \\frac{\\operatorname{cov}(x_i, x_j)}{\\sigma_i \\sigma_j}

    computed over the ``N`` descriptors of the minibatch (each row of the
    input is one sample, each column one channel).

    Args:
        descriptors: ``(N, d)``, ``(N, d, 1, 1)`` or dense ``(B, d, H, W)``.
        eps: Added to the standard deviations, so a constant channel gives
            zero correlations instead of ``nan``.

    Returns:
        ``(d, d)`` symmetric matrix with entries in ``[-1, 1]``.

    Raises:
        ValueError: Fewer than two descriptors.
    """
    x = check_descriptors(descriptors)
    if x.shape[0] < 2:
        raise ValueError(f"correlations need at least 2 descriptors in the minibatch; got {x.shape[0]}.")
    centred = x - x.mean(0, keepdim=True)
    cov = centred.T @ centred / (x.shape[0] - 1)
    std = cov.diagonal().clamp_min(0).sqrt() + eps
    return cov / (std[:, None] * std[None, :])


def descriptor_compactness_loss(descriptors: torch.Tensor, penalty: str = "abs") -> torch.Tensor:
    """Descriptor compactness loss :math:`\\mathcal L_c` (Sec. 3.1, Eq. 5).

    .. math:: \\mathcal L_c(\\hat T) = \\sum_{i \\neq j} |c_{ij}|

    the sum of the off-diagonal entries of the **d x d** correlation matrix
    of the descriptor channels, computed over all descriptors of the
    minibatch. (A common mistake correlates the ``B x B`` *samples* instead:
    that pushes different patches apart, not channels to be non-redundant.)

    Choice documented here: the paper writes :math:`\\sum_{i\\neq j} c_{ij}`
    and states the aim "to minimise the correlation". Taken literally the
    signed sum can be made negative without decorrelating anything (it is
    bounded below by ``-d`` and reaches its minimum when the sum of the
    standardised channels is constant). ``penalty`` chooses what is summed:

    * ``"abs"`` (default): :math:`|c_{ij}|`, zero exactly when the channels
      are uncorrelated;
    * ``"square"``: :math:`c_{ij}^2`, whose gradient vanishes near zero; with
      a minibatch of ``B`` descriptors the sample correlations of
      independent channels are about :math:`\\pm 1/\\sqrt B`, so ``"abs"``
      keeps pushing on that noise floor while ``"square"`` does not (see
      :func:`~ust.training.pretrain_teacher` for what we train with);
    * ``"signed"``: the literal :math:`c_{ij}`.

    Args:
        descriptors: ``(N, d)``, ``(N, d, 1, 1)`` or dense ``(B, d, H, W)``.
        penalty: ``"abs"``, ``"square"`` or ``"signed"``.

    Returns:
        Scalar in ``[0, d (d - 1)]`` (``"abs"``, ``"square"``) or ``[-d, d (d - 1)]``.
    """
    if penalty not in COMPACTNESS_PENALTIES:
        raise ValueError(f"penalty must be one of {COMPACTNESS_PENALTIES}; got {penalty!r}.")
    corr = correlation_matrix(descriptors)
    off_diagonal = corr - torch.diag_embed(corr.diagonal())
    if penalty == "abs":
        return off_diagonal.abs().sum()
    if penalty == "square":
        return off_diagonal.square().sum()
    return off_diagonal.sum()


def teacher_loss(*, distillation: torch.Tensor | None = None, metric: torch.Tensor | None = None,
                 compactness: torch.Tensor | None = None, lambda_k: float = 1.0, lambda_m: float = 1.0,
                 lambda_c: float = 1.0) -> torch.Tensor:
    """Weighted teacher loss (Sec. 3.1, Eq. 6).

    .. math:: \\mathcal L(\\hat T) = \\lambda_k \\mathcal L_k + \\lambda_m \\mathcal L_m + \\lambda_c \\mathcal L_c

    A term that is ``None`` (not computed) or has weight 0 is left out.

    Args:
        distillation: :math:`\\mathcal L_k` from :func:`knowledge_distillation_loss`.
        metric: :math:`\\mathcal L_m` from :func:`metric_learning_loss`.
        compactness: :math:`\\mathcal L_c` from :func:`descriptor_compactness_loss`.
        lambda_k, lambda_m, lambda_c: The weights (non-negative).

    Returns:
        Scalar loss.

    Raises:
        ValueError: A negative weight, or no term with a positive weight.
    """
    terms = (("distillation", distillation, lambda_k), ("metric", metric, lambda_m),
             ("compactness", compactness, lambda_c))
    total = None
    for name, value, weight in terms:
        if weight < 0:
            raise ValueError(f"loss weights must be >= 0; got {weight} for the {name} loss.")
        if value is None or weight == 0:
            continue
        total = weight * value if total is None else total + weight * value
    if total is None:
        raise ValueError("teacher_loss needs at least one term with a positive weight "
                         "(distillation=..., metric=... or compactness=...).")
    return total


def _feature_matrix(features: torch.Tensor, name: str) -> torch.Tensor:
    if features.dim() != 2 or features.shape[0] < 2:
        raise ValueError(f"{name} must be (N, F) with N >= 2 patches; got shape {tuple(features.shape)}.")
    return features.double()


def distillation_floor(features: torch.Tensor, out_dim: int) -> torch.Tensor:
    """The least distillation loss :math:`\\mathcal L_k` (Eq. 1) a ``d``-dimensional teacher can reach.

    Eq. 1 decodes a ``d``-dimensional descriptor with a linear layer ``D``
    (with bias, :class:`DistillationDecoder`), so ``D(T(p))`` lies in a
    ``d``-dimensional affine subspace of the ``F``-dimensional feature
    space, whatever the teacher. The mean squared distance of the features
    to their best such subspace is the sum of the ``F - d`` smallest
    eigenvalues of their covariance (Eckart-Young-Mirsky: the subspace of
    the ``d`` principal components). No teacher, however long trained,
    gets below it on these patches; a teacher whose :math:`\\mathcal L_k`
    stays far above it is limited by its training or its network, not by
    ``d``.

    Args:
        features: ``(N, F)`` features ``P(p)`` of ``N`` patches (standardised
            as the teacher saw them, see :func:`~ust.training.pretrain_teacher`).
        out_dim: The descriptor dimension ``d`` (``0`` gives the total variance).

    Returns:
        Scalar (float64): the floor of the batch mean of Eq. 1 on these
        patches; the covariance divides by ``N``, as the loss averages over
        the batch.

    Raises:
        ValueError: Not ``(N, F)`` with ``N >= 2``, or ``out_dim < 0``.
    """
    x = _feature_matrix(features, "features")
    if out_dim < 0:
        raise ValueError(f"out_dim must be >= 0; got {out_dim}.")
    centred = x - x.mean(0)
    eigenvalues = torch.linalg.eigvalsh(centred.T @ centred / len(x))       # ascending
    tail = eigenvalues[:max(0, x.shape[1] - out_dim)]
    return tail.clamp_min(0).sum()


def refit_distillation_loss(descriptors: torch.Tensor, features: torch.Tensor, *,
                            fit: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """The distillation loss :math:`\\mathcal L_k` (Eq. 1) of descriptors, with the best decoder refitted.

    The decoder ``D`` is discarded after pretraining (Sec. 3.1). To measure
    how much of the pretrained network's features a teacher's descriptors
    still carry, this fits the best affine ``D`` by least squares, on the
    ``fit`` patches when given (an honest, held-out measure) or else on the
    evaluated patches themselves (in-sample, never above the loss of the
    decoder the teacher trained with on those patches).

    Args:
        descriptors: ``(N, d)`` (or ``(N, d, 1, 1)``) teacher descriptors of ``N`` patches.
        features: ``(N, F)`` features ``P(p)`` of the same patches.
        fit: Optional ``(descriptors, features)`` of other patches, ``(M, d)``
            and ``(M, F)``, to fit ``D`` on.

    Returns:
        Scalar (float64): the batch mean of Eq. 1 on the evaluated patches.

    Raises:
        ValueError: Mismatched shapes or fewer than two patches.
    """
    def pair(d: torch.Tensor, f: torch.Tensor, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        d = d.flatten(1).double() if d.dim() == 4 else d.double()
        f = _feature_matrix(f, f"{name} features")
        if d.dim() != 2 or d.shape[0] != f.shape[0]:
            raise ValueError(f"{name}: descriptors must be (N, d) for the N = {f.shape[0]} feature rows; "
                             f"got shape {tuple(d.shape)}.")
        return torch.cat([d, torch.ones(len(d), 1, dtype=d.dtype)], 1), f     # the bias as a constant input

    x, y = pair(descriptors, features, "evaluated")
    fit_x, fit_y = pair(*fit, "fit") if fit is not None else (x, y)
    if fit_x.shape[1] != x.shape[1] or fit_y.shape[1] != y.shape[1]:
        raise ValueError(f"fit patches must have the evaluated patches' d and F; got "
                         f"{tuple(fit_x.shape[1:])}/{tuple(fit_y.shape[1:])} against "
                         f"{tuple(x.shape[1:])}/{tuple(y.shape[1:])} "
                         "(d + 1 with the bias).")
    weights = torch.linalg.lstsq(fit_x, fit_y, driver="gelsd").solution
    return (x @ weights - y).square().sum(1).mean()
