"""Student networks and their regression loss.

Introduced in the book's chapter *Student regression*.

Bergmann et al. (2020), Sec. 3.2 ("Ensemble of Student Networks"): ``M``
students :math:`S_i`, each with the teacher's architecture and independently
initialised, regress the teacher's dense descriptors on anomaly-free images.
The targets are normalised per channel with the mean :math:`\\mu` and
standard deviation :math:`\\sigma` of the teacher's descriptors over the
training data, and each student minimises (Eq. 8)

.. math:: \\mathcal L(S_i) = \\frac{1}{wh} \\sum_{(r, c)}
   \\lVert \\mu^{S_i}_{(r,c)} - (\\mathbf y^T_{(r,c)} - \\mu)\\operatorname{diag}(\\sigma)^{-1} \\rVert_2^2 .
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ._checks import check_images, check_same_shape
from .networks import PatchNet

__all__ = ["ChannelStatistics", "normalize_descriptors", "student_regression_loss", "make_students"]


@dataclass
class ChannelStatistics:
    """Running per-channel mean and standard deviation of descriptor maps.

    Accumulates the teacher's descriptors over the training set batch by
    batch (Chan et al.'s parallel update in float64, so the result equals
    the statistics of the concatenated data) without holding them all.

    Attributes:
        count: Number of descriptors (pixels) seen.
        mean: ``(d,)`` float64 running mean.
        m2: ``(d,)`` float64 running sum of squared deviations.

    Example:
        >>> stats = ChannelStatistics()
        >>> stats.update(torch.randn(4, 8, 5, 5))
        >>> stats.mean.shape, stats.std.shape
        (torch.Size([8]), torch.Size([8]))
    """

    count: int = 0
    mean: torch.Tensor | None = None
    m2: torch.Tensor | None = None

    def update(self, descriptors: torch.Tensor) -> "ChannelStatistics":
        """Add a batch of ``(B, d, H, W)`` descriptor maps (or ``(N, d)``)."""
        if descriptors.dim() == 4:
            x = descriptors.detach().permute(0, 2, 3, 1).reshape(-1, descriptors.shape[1])
        elif descriptors.dim() == 2:
            x = descriptors.detach()
        else:
            raise ValueError(f"descriptors must be (B, d, H, W) or (N, d); got shape {tuple(descriptors.shape)}.")
        x = x.to(torch.float64)
        n = x.shape[0]
        if n == 0:
            return self
        batch_mean = x.mean(0)
        batch_m2 = (x - batch_mean).square().sum(0)
        if self.mean is None:
            self.count, self.mean, self.m2 = n, batch_mean, batch_m2
            return self
        if batch_mean.shape != self.mean.shape:
            raise ValueError(f"descriptors have {batch_mean.shape[0]} channels, earlier batches had "
                             f"{self.mean.shape[0]}.")
        self.mean = self.mean.to(x.device)
        self.m2 = self.m2.to(x.device)
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + batch_m2 + delta.square() * (self.count * n / total)
        self.count = total
        return self

    @property
    def std(self) -> torch.Tensor:
        """``(d,)`` float64 standard deviation (unbiased, ``N - 1``)."""
        if self.mean is None or self.count < 2:
            raise ValueError("ChannelStatistics needs at least two descriptors; call update() with training data.")
        return (self.m2 / (self.count - 1)).sqrt()


def normalize_descriptors(descriptors: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
                          eps: float = 1e-6) -> torch.Tensor:
    """Normalise teacher descriptors per channel (Sec. 3.2).

    .. math:: \\tilde{\\mathbf y} = (\\mathbf y^T - \\mu)\\operatorname{diag}(\\sigma)^{-1}

    Args:
        descriptors: ``(B, d, H, W)`` teacher maps (or ``(N, d)``).
        mean: ``(d,)`` channel means over the training data.
        std: ``(d,)`` channel standard deviations.
        eps: Floor for ``std`` so a dead channel does not divide by zero.

    Returns:
        Tensor of the input's shape and dtype.

    Raises:
        ValueError: If ``mean``/``std`` do not have ``d`` entries.
    """
    d = descriptors.shape[1]
    if mean.shape != (d,) or std.shape != (d,):
        raise ValueError(f"mean and std must have shape ({d},) to match the descriptors' {d} channels; got "
                         f"{tuple(mean.shape)} and {tuple(std.shape)}.")
    shape = (1, d) + (1,) * (descriptors.dim() - 2)
    mean = mean.to(descriptors).reshape(shape)
    std = std.to(descriptors).clamp_min(eps).reshape(shape)
    return (descriptors - mean) / std


def student_regression_loss(student: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Student regression loss :math:`\\mathcal L(S_i)` (Sec. 3.2, Eq. 8).

    Squared Euclidean distance between the student's descriptor and the
    normalised teacher descriptor, averaged over the ``w x h`` positions
    (and over the images of the batch).

    Args:
        student: ``(B, d, H, W)`` student output :math:`\\mu^{S_i}`.
        target: ``(B, d, H, W)`` normalised teacher descriptors, see
            :func:`normalize_descriptors`.

    Returns:
        Scalar loss.

    Raises:
        ValueError: If the shapes differ or are not 4-D.
    """
    check_images(student, name="student")
    check_same_shape(student, target, ("student", "target"))
    return (student - target).square().sum(1).mean()


def make_students(patch_size: int, n_students: int = 3, *, out_dim: int = 128, in_channels: int = 3,
                  seed: int = 0) -> nn.ModuleList:
    """``M`` students with the teacher's architecture, independently initialised.

    Student ``i`` is initialised from seed ``seed + i``, so the ensemble is
    reproducible and its members differ (Sec. 3.2).

    Args:
        patch_size: The teacher's ``p`` (17, 33 or 65).
        n_students: ``M >= 1``. With ``M = 1`` the predictive variance is 0.
        out_dim: The teacher's descriptor dimension.
        in_channels: Image channels.
        seed: Base seed.

    Returns:
        ``nn.ModuleList`` of ``M`` :class:`~ust.PatchNet`.

    Raises:
        ValueError: If ``n_students < 1``.
    """
    if int(n_students) < 1:
        raise ValueError(f"n_students must be at least 1; got {n_students}.")
    students = []
    for i in range(int(n_students)):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + i)
            students.append(PatchNet(patch_size, out_dim=out_dim, in_channels=in_channels))
    return nn.ModuleList(students)
