"""A trained Student-Teacher detector at one scale, and the multi-scale fusion.

Introduced in the book's chapters *Student regression* (:class:`StudentTeacher`)
and *Multi-scale fusion* (:class:`MultiScaleStudentTeacher`).

A :class:`StudentTeacher` bundles what inference needs: the teacher, the
``M`` students, the teacher's channel statistics (target normalisation,
Sec. 3.2) and, after :meth:`StudentTeacher.calibrate`, the score
normalisation measured on anomaly-free validation images.

Maps come in two resolutions:

* ``dense=True``: one score per pixel, ``(B, H, W)``, with the fast dense
  extraction (for localisation);
* ``dense=False``: the networks' native lattice, ``(B, ceil(H / S),
  ceil(W / S))`` with stride ``S`` = 8, 4, 1 for ``p`` = 65, 33, 17: the
  same numbers at every ``S``-th pixel, many times cheaper (for image-level
  scores).
"""

from __future__ import annotations

import torch
from torch import nn
from tqdm.auto import tqdm

from ._checks import check_images
from .dense import DensePatchNet
from .networks import PatchNet
from .scores import ScoreNormalization, anomaly_score, fuse_scales, image_score, predictive_variance, regression_error
from .students import normalize_descriptors, student_regression_loss

__all__ = ["StudentTeacher", "MultiScaleStudentTeacher"]


class StudentTeacher(nn.Module):
    """Teacher, students and statistics for one patch size.

    Args:
        teacher: The pretrained teacher (frozen here).
        students: ``M`` students with the teacher's architecture.
        mean: ``(d,)`` channel means of the teacher on the training images.
        std: ``(d,)`` channel standard deviations.
        padding: Padding of the dense maps (see :class:`~ust.DensePatchNet`).
        normalization: Score normalisation from validation images, if known.

    Raises:
        ValueError: Students whose architecture differs from the teacher's.
    """

    def __init__(self, teacher: PatchNet, students: nn.ModuleList, mean: torch.Tensor, std: torch.Tensor,
                 padding: str = "zeros", normalization: ScoreNormalization | None = None) -> None:
        super().__init__()
        for i, s in enumerate(students):
            if (s.patch_size, s.out_dim, s.in_channels) != (teacher.patch_size, teacher.out_dim, teacher.in_channels):
                raise ValueError(f"student {i} is PatchNet(p={s.patch_size}, out_dim={s.out_dim}, in_channels="
                                 f"{s.in_channels}) but the teacher is PatchNet(p={teacher.patch_size}, out_dim="
                                 f"{teacher.out_dim}, in_channels={teacher.in_channels}); students need the "
                                 "teacher's architecture.")
        self.padding = padding
        self.dense_teacher = DensePatchNet(teacher.requires_grad_(False).eval(), padding)
        self.dense_students = nn.ModuleList([DensePatchNet(s, padding) for s in students])
        self.register_buffer("mean", mean.detach().to(torch.float32).clone())
        self.register_buffer("std", std.detach().to(torch.float32).clone())
        self.normalization = normalization

    @property
    def teacher(self) -> PatchNet:
        return self.dense_teacher.net

    @property
    def students(self) -> list[PatchNet]:
        return [d.net for d in self.dense_students]

    def train(self, mode: bool = True) -> "StudentTeacher":
        super().train(mode)
        self.dense_teacher.eval()  # the teacher is fixed
        return self

    @property
    def patch_size(self) -> int:
        return self.teacher.patch_size

    @property
    def n_students(self) -> int:
        return len(self.dense_students)

    @property
    def stride(self) -> int:
        """Stride of the native lattice (``dense=False``)."""
        return self.teacher.stride

    def _descriptors(self, net: DensePatchNet, images: torch.Tensor, dense: bool,
                     offset: tuple[int, int]) -> torch.Tensor:
        return net(images) if dense else net.strided(images, offset)

    def teacher_targets(self, images: torch.Tensor, dense: bool = True,
                        offset: tuple[int, int] = (0, 0)) -> torch.Tensor:
        """Normalised teacher descriptors ``(B, d, h, w)`` (Sec. 3.2)."""
        with torch.no_grad():
            raw = self._descriptors(self.dense_teacher, images, dense, offset)
        return normalize_descriptors(raw, self.mean, self.std)

    def regression_losses(self, images: torch.Tensor, dense: bool = False,
                          offset: tuple[int, int] = (0, 0)) -> torch.Tensor:
        """Each student's regression loss :math:`\\mathcal L(S_i)` on a batch, ``(M,)`` (Sec. 3.2, Eq. 8).

        What one step of :func:`~ust.train_students` minimises (their sum),
        with gradients to the students only.

        Args:
            images: ``(B, C, H, W)`` anomaly-free images in ``[0, 1]``.
            dense: Every pixel, or the native lattice at ``offset`` (see
                :meth:`~ust.DensePatchNet.strided`).
            offset: ``(o_r, o_c)`` of the lattice, ``0 <= o < stride``.
        """
        target = self.teacher_targets(images, dense, offset)
        return torch.stack([student_regression_loss(self._descriptors(s, images, dense, offset), target)
                            for s in self.dense_students])

    def predictions(self, images: torch.Tensor, dense: bool = True,
                    offset: tuple[int, int] = (0, 0)) -> torch.Tensor:
        """Students' outputs stacked as ``(M, B, d, h, w)``."""
        return torch.stack([self._descriptors(s, images, dense, offset) for s in self.dense_students])

    @torch.no_grad()
    def error_and_variance(self, images: torch.Tensor, dense: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Regression error and predictive variance maps, each ``(B, h, w)`` (Eqs. 10, 11).

        Args:
            images: ``(B, C, H, W)`` in ``[0, 1]``.
            dense: Per pixel (``True``) or on the native lattice.
        """
        check_images(images, channels=self.teacher.in_channels)
        preds = self.predictions(images, dense)
        return regression_error(preds, self.teacher_targets(images, dense)), predictive_variance(preds)

    def _batches(self, images: torch.Tensor, batch_size: int, progress: bool, desc: str):
        device = self.mean.device
        for start in tqdm(range(0, len(images), batch_size), desc=desc, disable=not progress, mininterval=2.0):
            yield images[start:start + batch_size].to(device)

    @torch.no_grad()
    def calibrate(self, val_images: torch.Tensor, dense: bool = False, batch_size: int = 64,
                  progress: bool = False) -> ScoreNormalization:
        """Measure the score normalisation on anomaly-free validation images (Sec. 3.2).

        Args:
            val_images: ``(N, C, H, W)`` anomaly-free images, not used for training.
            dense: Measure on dense maps or on the native lattice; use the
                same resolution as for scoring (the statistics of the two
                agree up to sampling, the lattice being a subset of pixels).
            batch_size: Images per forward pass.
            progress: Show a tqdm bar.

        Returns:
            The fitted :class:`~ust.ScoreNormalization`, also stored on the model.
        """
        errors, variances = [], []
        for batch in self._batches(val_images, batch_size, progress, f"calibrate p={self.patch_size}"):
            e, v = self.error_and_variance(batch, dense)
            errors.append(e.cpu())
            variances.append(v.cpu())
        self.normalization = ScoreNormalization.fit(errors, variances)
        return self.normalization

    @torch.no_grad()
    def score_maps(self, images: torch.Tensor, dense: bool = True, components: str = "both") -> torch.Tensor:
        """Combined anomaly score maps ``(B, h, w)`` (Eq. 12).

        Raises:
            ValueError: If the model was not calibrated.
        """
        if self.normalization is None:
            raise ValueError("this StudentTeacher has no score normalisation yet: call "
                             "model.calibrate(validation_images) with anomaly-free images first.")
        e, v = self.error_and_variance(images, dense)
        return anomaly_score(e, v, self.normalization, components)

    @torch.no_grad()
    def image_scores(self, images: torch.Tensor, dense: bool = False, components: str = "both",
                     reduction: str = "mean", batch_size: int = 64, progress: bool = False) -> torch.Tensor:
        """One anomaly score per image ``(N,)`` (see :func:`~ust.image_score`)."""
        scores = [image_score(self.score_maps(b, dense, components), reduction).cpu()
                  for b in self._batches(images, batch_size, progress, f"score p={self.patch_size}")]
        return torch.cat(scores)


class MultiScaleStudentTeacher(nn.Module):
    """Several :class:`StudentTeacher` scales, fused by averaging (Sec. 3.3, Eq. 13).

    Args:
        models: One calibrated :class:`StudentTeacher` per patch size.
    """

    def __init__(self, models: list[StudentTeacher]) -> None:
        super().__init__()
        if not models:
            raise ValueError("MultiScaleStudentTeacher needs at least one StudentTeacher.")
        sizes = [m.patch_size for m in models]
        if len(set(sizes)) != len(sizes):
            raise ValueError(f"each scale must appear once; got patch sizes {sizes}.")
        self.scales = nn.ModuleList(models)

    @property
    def patch_sizes(self) -> list[int]:
        return [m.patch_size for m in self.scales]

    @torch.no_grad()
    def score_maps(self, images: torch.Tensor, components: str = "both") -> torch.Tensor:
        """Fused dense score maps ``(B, H, W)``: the mean over scales."""
        return fuse_scales([m.score_maps(images, True, components) for m in self.scales])

    @torch.no_grad()
    def image_scores(self, images: torch.Tensor, dense: bool = False, components: str = "both",
                     reduction: str = "mean", batch_size: int = 64, progress: bool = False) -> torch.Tensor:
        """Fused image scores ``(N,)``.

        With ``dense=True`` the dense maps are fused, then reduced. With
        ``dense=False`` each scale's lattice map is reduced and the scale
        scores are averaged (the lattices differ in size); for the mean
        reduction both equal the mean of the fused map up to the
        subsampling of the lattice.
        """
        if dense:
            scores = []
            for start in range(0, len(images), batch_size):
                batch = images[start:start + batch_size].to(self.scales[0].mean.device)
                scores.append(image_score(self.score_maps(batch, components), reduction).cpu())
            return torch.cat(scores)
        return torch.stack([m.image_scores(images, False, components, reduction, batch_size, progress)
                            for m in self.scales]).mean(0)
