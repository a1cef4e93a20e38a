"""Training loops: pretraining a teacher, training the students.

Introduced in the book's chapters *Teacher losses* (:func:`pretrain_teacher`)
and *Student regression* (:func:`train_students`).

Plain PyTorch loops with Adam, tqdm progress, automatic device choice and
one seed that makes CPU runs repeat exactly.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import torch
from tqdm.auto import tqdm

from .backbones import PretrainedFeatures
from .data.patches import PatchSampler
from .networks import PatchNet
from .runtime import seed_everything, select_device
from .teacher_losses import (
    DistillationDecoder,
    descriptor_compactness_loss,
    distillation_floor,
    knowledge_distillation_loss,
    metric_learning_loss,
    refit_distillation_loss,
    teacher_loss,
)

if TYPE_CHECKING:
    from .model import StudentTeacher

__all__ = ["TeacherTraining", "pretrain_teacher", "distillation_capacity", "StudentTraining", "teacher_statistics",
           "train_students", "LR_SCHEDULES"]

#: Learning-rate schedules of :func:`train_students`: the paper's constant rate, or a cosine decay to 0
#: (introduced in the book's chapter *Results*, "Two minutes, spent better").
LR_SCHEDULES = ("constant", "cosine")


@dataclass
class TeacherTraining:
    """What :func:`pretrain_teacher` returns.

    Attributes:
        teacher: The trained :class:`~ust.PatchNet` (eval mode, on the CPU).
        decoder: The distillation decoder ``D`` (``None`` without L_k).
        history: Per-iteration losses: keys ``"total"``, ``"distillation"``,
            ``"metric"``, ``"compactness"`` (those computed).
        settings: The arguments, for the checkpoint metadata.
        seconds: Wall time of the loop.
    """

    teacher: PatchNet
    decoder: DistillationDecoder | None
    history: dict[str, list[float]] = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    seconds: float = 0.0

    def final_losses(self, last: int = 100) -> dict[str, float]:
        """Mean of each loss over the last ``last`` iterations."""
        return {k: sum(v[-last:]) / len(v[-last:]) for k, v in self.history.items() if v}


def pretrain_teacher(sampler: PatchSampler, backbone: PretrainedFeatures | None, *, out_dim: int = 128,
                     iterations: int = 3000, batch_size: int = 64, lr: float = 1e-3, weight_decay: float = 1e-5,
                     lambda_k: float = 1.0, lambda_m: float = 0.0, lambda_c: float = 1e-3, margin: float = 1.0,
                     compactness_penalty: str = "abs", standardize_features: bool = True,
                     reference_patches: int = 2048, seed: int = 0, device: str | torch.device | None = None,
                     progress: bool = True) -> TeacherTraining:
    """Pretrain a teacher :math:`\\hat T` on natural image patches (Sec. 3.1).

    Each iteration draws ``batch_size`` patches (triplets when
    ``lambda_m > 0``) from ``sampler`` and minimises
    :math:`\\lambda_k \\mathcal L_k + \\lambda_m \\mathcal L_m + \\lambda_c \\mathcal L_c`
    (:func:`~ust.teacher_loss`) with Adam, the learning rate decaying from
    ``lr`` to 0 along a cosine.

    Settings we settled on (pilot runs, p = 17, 400 steps, 10,000
    Tiny-ImageNet photos, held-out patches): ``lr = 1e-3`` beats the
    suggested ``2e-4`` (distillation loss 977 vs 992, triplet accuracy 0.949
    vs 0.926); ``lambda_c = 1e-3`` lowers the mean channel correlation from
    0.50 to 0.41 and even helps distillation (992 vs 1014), while
    ``lambda_c >= 0.01`` collapses the teacher (its descriptors lose all
    information and the decoder predicts the mean feature), for every
    penalty of :func:`~ust.descriptor_compactness_loss`.

    Choice documented here: with ``standardize_features`` the distillation
    target is ``(P(p) - m) / s``, with the per-feature mean ``m`` and one
    overall standard deviation ``s`` measured on ``reference_patches`` patches before
    training, so that :math:`\\mathcal L_k` starts near ``feature_dim`` for
    every backbone and patch size and the weights :math:`\\lambda` mean the
    same thing at every scale. The decoder is affine and ``s`` is a single
    number, so the minimiser is the paper's up to scale. (Per-feature
    scaling would blow up the many nearly constant features of small
    patches.)

    Args:
        sampler: Patches of natural images; its ``patch_size`` sets ``p``.
        backbone: The pretrained network ``P`` for :math:`\\mathcal L_k`
            (:func:`~ust.backbones.load_backbone`); ``None`` only if
            ``lambda_k == 0``.
        out_dim: Descriptor dimension ``d``.
        iterations: Optimiser steps.
        batch_size: Patches per step (at least 2 for the correlations).
        lr, weight_decay: Adam settings (``lr`` is the starting rate).
        lambda_k, lambda_m, lambda_c: Loss weights.
        margin: :math:`\\delta` of the triplet loss.
        compactness_penalty: What :func:`~ust.descriptor_compactness_loss` sums.
        standardize_features: Standardise ``P``'s features (see above).
        reference_patches: Patches for measuring ``m`` and ``s`` (multiples of 256).
        seed: Seeds the network's initialisation (the sampler has its own).
        device: See :func:`~ust.runtime.select_device`.
        progress: Show a tqdm bar.

    Returns:
        :class:`TeacherTraining`.

    Raises:
        ValueError: Inconsistent arguments (no backbone for L_k, batch < 2).
    """
    if lambda_k > 0 and backbone is None:
        raise ValueError("lambda_k > 0 needs a pretrained backbone: pass load_backbone('efficientnet_lite0').")
    if batch_size < 2:
        raise ValueError(f"batch_size must be at least 2 (compactness needs correlations); got {batch_size}.")
    if iterations < 1:
        raise ValueError(f"iterations must be at least 1; got {iterations}.")
    device = select_device(device)
    seed_everything(seed)
    teacher = PatchNet(sampler.patch_size, out_dim=out_dim).to(device).train()
    decoder = DistillationDecoder(out_dim, backbone.feature_dim).to(device) if lambda_k > 0 else None
    feature_mean, feature_std = None, None
    if backbone is not None:
        backbone = backbone.to(device)
        if standardize_features and lambda_k > 0:
            with torch.no_grad():
                reference = torch.cat([backbone(sampler.sample(min(256, reference_patches)).to(device))
                                       for _ in range(max(1, reference_patches // 256))])
            feature_mean, feature_std = _feature_standardization(reference)
    params = list(teacher.parameters()) + (list(decoder.parameters()) if decoder is not None else [])
    optimizer = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=iterations)
    history: dict[str, list[float]] = {"total": []}
    start = time.perf_counter()
    bar = tqdm(range(iterations), desc=f"teacher p={sampler.patch_size}", disable=not progress, mininterval=2.0)
    for _ in bar:
        if lambda_m > 0:
            anchor, positive, negative = (t.to(device) for t in sampler.triplets(batch_size))
        else:
            anchor, positive, negative = sampler.sample(batch_size).to(device), None, None
        descriptors = teacher.describe(anchor)
        terms: dict[str, torch.Tensor] = {}
        if lambda_k > 0:
            with torch.no_grad():
                target = backbone(anchor)
                if feature_mean is not None:
                    target = (target - feature_mean) / feature_std
            terms["distillation"] = knowledge_distillation_loss(decoder(descriptors), target)
        if lambda_m > 0:
            terms["metric"] = metric_learning_loss(descriptors, teacher.describe(positive),
                                                   teacher.describe(negative), margin=margin)
        if lambda_c > 0:
            terms["compactness"] = descriptor_compactness_loss(descriptors, compactness_penalty)
        loss = teacher_loss(**terms, lambda_k=lambda_k, lambda_m=lambda_m, lambda_c=lambda_c)
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"the teacher loss became {loss.item()}; lower the learning rate (lr={lr}).")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        history["total"].append(loss.item())
        for name, value in terms.items():
            history.setdefault(name, []).append(value.item())
        if progress:
            bar.set_postfix({k: f"{v[-1]:.3g}" for k, v in history.items()}, refresh=False)
    seconds = time.perf_counter() - start
    settings = dict(patch_size=sampler.patch_size, out_dim=out_dim, iterations=iterations, batch_size=batch_size,
                    lr=lr, lr_schedule="cosine", weight_decay=weight_decay,
                    lambda_k=lambda_k, lambda_m=lambda_m, lambda_c=lambda_c,
                    margin=margin, compactness_penalty=compactness_penalty,
                    standardize_features=standardize_features, seed=seed,
                    backbone=backbone.name if backbone is not None else None,
                    max_shift=sampler.max_shift, noise_std=sampler.noise_std, image_scale=sampler.scale,
                    device=str(device))
    teacher = teacher.cpu().eval()
    decoder = decoder.cpu().eval() if decoder is not None else None
    return TeacherTraining(teacher, decoder, history, settings, seconds)


def _feature_standardization(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean ``(F,)`` of ``features`` ``(N, F)`` and one overall standard deviation (a 0-d tensor).

    One scale for all ``F`` features, not one per feature, so that Eq. 1
    still weighs the features as the pretrained network does; used by
    :func:`pretrain_teacher` (its targets) and :func:`distillation_capacity`.
    """
    mean = features.mean(0)
    return mean, (features - mean).square().mean().sqrt().clamp_min(1e-6)


def distillation_capacity(teacher: PatchNet, backbone: PretrainedFeatures, sampler: PatchSampler, *,
                          n_patches: int = 4096, batch_size: int = 256) -> dict[str, float]:
    """How much of the pretrained network's features a teacher carries, against the most its ``d`` allows.

    Introduced in the book's chapter *Results* ("Is the teacher the bottleneck?").
    Draws ``2 n_patches`` patches from ``sampler``: on the first half it
    fits the best affine decoder from the teacher's descriptors to the
    features of ``backbone`` (:func:`~ust.refit_distillation_loss`), on the
    second it measures the distillation loss (Eq. 1) with that decoder and
    its floor for ``d = teacher.out_dim`` (:func:`~ust.distillation_floor`).
    The features are standardised by the mean and overall standard
    deviation of the fitting half, as in :func:`pretrain_teacher`; the
    fractions below do not depend on that scale.

    Args:
        teacher: A pretrained teacher (``p`` must equal ``sampler.patch_size``).
        backbone: The network ``P`` it was distilled from.
        sampler: Patches, e.g. of the pretraining photos or of a dataset's
            training images (a sampler with its own seed: new patches).
        n_patches: Patches in each half, at least ``16 d``: the fit has
            ``d + 1`` coefficients per feature, and with fewer patches it
            overfits (the shipped ``p = 17`` teacher on the embedded digits
            explains -1.46, -0.38 and 0.38 of the variance with 512, 1,024
            and 2,048 patches). The held-out loss errs on the high side.
        batch_size: Patches per forward pass.

    Returns:
        ``total_variance`` (of the evaluated features, about ``F``),
        ``floor`` and ``refit_loss`` (Eq. 1 on the evaluated half), and the
        fractions of the variance they leave explained: ``ceiling`` =
        ``1 - floor / total_variance`` and ``explained`` =
        ``1 - refit_loss / total_variance``.

    Raises:
        ValueError: The teacher's and the sampler's patch sizes differ, or
            too few patches for the fit.
    """
    if teacher.patch_size != sampler.patch_size:
        raise ValueError(f"the teacher has p = {teacher.patch_size} but the sampler draws {sampler.patch_size}x"
                         f"{sampler.patch_size} patches: make the PatchSampler with patch_size={teacher.patch_size}.")
    if n_patches < 16 * teacher.out_dim:
        raise ValueError(f"n_patches must be at least 16 d = {16 * teacher.out_dim} for a stable decoder fit; "
                         f"got {n_patches}.")
    was_training = teacher.training
    teacher.eval()
    descriptors, features = [], []
    try:
        with torch.no_grad():
            for start in range(0, 2 * n_patches, batch_size):
                patches = sampler.sample(min(batch_size, 2 * n_patches - start))
                descriptors.append(teacher.describe(patches))
                features.append(backbone(patches))
    finally:
        teacher.train(was_training)                     # the caller's module leaves in the mode it came in
    descriptors, features = torch.cat(descriptors).double(), torch.cat(features).double()
    mean, scale = _feature_standardization(features[:n_patches])
    features = (features - mean) / scale
    held = features[n_patches:]
    total = distillation_floor(held, 0).item()
    floor = distillation_floor(held, teacher.out_dim).item()
    refit = refit_distillation_loss(descriptors[n_patches:], held,
                                    fit=(descriptors[:n_patches], features[:n_patches])).item()
    return {"total_variance": total, "floor": floor, "refit_loss": refit,
            "ceiling": 1 - floor / total, "explained": 1 - refit / total}


@dataclass
class StudentTraining:
    """What :func:`train_students` returns.

    Attributes:
        model: The :class:`~ust.model.StudentTeacher` (eval mode, CPU, not yet
            calibrated).
        history: ``"loss"``: per iteration, the mean over students of
            :math:`\\mathcal L(S_i)`; ``"per_student"``: lists per student.
        settings: The arguments, for the checkpoint metadata.
        seconds: Wall time, statistics pass included.
    """

    model: "StudentTeacher"
    history: dict[str, list] = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    seconds: float = 0.0


def teacher_statistics(teacher: PatchNet, images: torch.Tensor, *, padding: str = "zeros", dense: bool = False,
                       batch_size: int = 64, seed: int = 0, device: str | torch.device | None = None,
                       progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation of the teacher on training images (Sec. 3.2).

    Args:
        teacher: The teacher.
        images: ``(N, C, H, W)`` anomaly-free training images in ``[0, 1]``.
        padding: Dense-map padding.
        dense: Use every pixel (exact, slow for ``p = 65``) or, per batch, the
            native lattice at a random offset (an unbiased sample of the
            pixels; the default).
        batch_size: Images per forward pass.
        seed: Seed of the offsets.
        device: See :func:`~ust.runtime.select_device`.
        progress: Show a tqdm bar.

    Returns:
        ``(mean, std)``, each ``(d,)`` float32 on the CPU.
    """
    from .dense import DensePatchNet
    from .students import ChannelStatistics

    device = select_device(device)
    net = DensePatchNet(teacher.to(device).eval(), padding)
    generator = torch.Generator().manual_seed(seed)
    stats = ChannelStatistics()
    with torch.no_grad():
        for start in tqdm(range(0, len(images), batch_size), desc="teacher statistics", disable=not progress,
                          mininterval=2.0):
            batch = images[start:start + batch_size].to(device)
            if dense:
                stats.update(net(batch))
            else:
                offset = tuple(torch.randint(0, teacher.stride, (2,), generator=generator).tolist())
                stats.update(net.strided(batch, offset))
    teacher.cpu()
    return stats.mean.float().cpu(), stats.std.float().cpu()


def train_students(teacher: PatchNet, images: torch.Tensor, *, n_students: int = 3, iterations: int = 1000,
                   batch_size: int = 16, lr: float = 1e-4, weight_decay: float = 1e-5, lr_schedule: str = "constant",
                   dense: bool = False, padding: str = "zeros", stats_images: int = 2000, seed: int = 0,
                   device: str | torch.device | None = None, progress: bool = True,
                   callback: Callable[[int, "StudentTeacher"], None] | None = None,
                   callback_every: int = 100) -> StudentTraining:
    """Train ``M`` students to regress the normalised teacher (Sec. 3.2, Eq. 8).

    First the teacher's channel statistics are measured on (up to
    ``stats_images`` of) the training images
    (:func:`teacher_statistics`); then every iteration takes a batch of
    images and minimises :math:`\\sum_i \\mathcal L(S_i)` with Adam.

    With ``dense=False`` (default) each batch is evaluated on the native
    lattice of the networks at a random offset
    (:meth:`~ust.DensePatchNet.strided`): every pixel is a training target
    equally often, and a ``p = 65`` batch costs about 1/10 of the dense one.
    The expectation of this loss is the dense loss of Eq. 8. ``dense=True``
    trains on every pixel of every image, as in the paper.

    Args:
        teacher: The pretrained teacher.
        images: ``(N, C, H, W)`` anomaly-free training images in ``[0, 1]``.
        n_students: ``M``.
        iterations: Optimiser steps.
        batch_size: Images per step.
        lr, weight_decay: Adam settings.
        lr_schedule: ``"constant"`` (the paper's) keeps ``lr``; ``"cosine"``
            decays it from ``lr`` to 0 along a cosine over ``iterations``,
            as :func:`pretrain_teacher` does (with small batches it buys
            more in a short run; chapter *Results*, "Two minutes, spent
            better").
        dense: Train on dense maps instead of random lattices.
        padding: Dense-map padding.
        stats_images: At most this many images for the statistics.
        seed: One seed for the students' initialisation (student ``i`` uses
            ``seed + i``), the batches and the offsets.
        device: See :func:`~ust.runtime.select_device`.
        progress: Show a tqdm bar.
        callback: Called as ``callback(iteration, model)`` after every
            ``callback_every`` iterations (e.g. to follow a validation score);
            it must not change the students.
        callback_every: See ``callback``.

    Returns:
        :class:`StudentTraining` with the :class:`~ust.model.StudentTeacher`.

    Raises:
        ValueError: Bad images or arguments.
    """
    from ._checks import check_images
    from .model import StudentTeacher
    from .students import make_students

    check_images(images, channels=teacher.in_channels, name="training images")
    if iterations < 1 or batch_size < 1:
        raise ValueError(f"iterations and batch_size must be at least 1; got {iterations} and {batch_size}.")
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"unknown lr_schedule {lr_schedule!r}; use one of {', '.join(map(repr, LR_SCHEDULES))}.")
    device = select_device(device)
    generator = seed_everything(seed)
    start_time = time.perf_counter()
    n_stats = min(len(images), stats_images)
    stats_index = torch.randperm(len(images), generator=generator)[:n_stats].sort().values
    mean, std = teacher_statistics(teacher, images[stats_index], padding=padding, seed=seed, device=device,
                                   progress=progress)
    students = make_students(teacher.patch_size, n_students, out_dim=teacher.out_dim,
                             in_channels=teacher.in_channels, seed=seed)
    model = StudentTeacher(teacher, students, mean, std, padding).to(device)
    model.train()
    optimizer = torch.optim.Adam([p for s in model.students for p in s.parameters()], lr=lr,
                                 weight_decay=weight_decay)
    schedule = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=iterations)
                if lr_schedule == "cosine" else None)
    history: dict[str, list] = {"loss": [], "per_student": [[] for _ in range(n_students)]}
    order = torch.randperm(len(images), generator=generator)
    cursor = 0
    bar = tqdm(range(iterations), desc=f"students p={teacher.patch_size}", disable=not progress, mininterval=2.0)
    for step in bar:
        if cursor + batch_size > len(order):
            order, cursor = torch.randperm(len(images), generator=generator), 0
        batch = images[order[cursor:cursor + batch_size]].to(device)
        cursor += batch_size
        offset = (0, 0) if dense else tuple(torch.randint(0, model.stride, (2,), generator=generator).tolist())
        losses = model.regression_losses(batch, dense, offset)          # (M,)
        loss = losses.sum()
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"the student loss became {loss.item()}; lower the learning rate (lr={lr}).")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if schedule is not None:
            schedule.step()
        history["loss"].append(loss.item() / n_students)
        for i, value in enumerate(losses):
            history["per_student"][i].append(value.item())
        if progress:
            bar.set_postfix(loss=f"{history['loss'][-1]:.3g}", refresh=False)
        if callback is not None and (step + 1) % callback_every == 0:
            model.eval()
            callback(step + 1, model)
            model.train()
    model = model.cpu().eval()
    settings = dict(patch_size=teacher.patch_size, n_students=n_students, iterations=iterations,
                    batch_size=batch_size, lr=lr, weight_decay=weight_decay, lr_schedule=lr_schedule, dense=dense,
                    padding=padding, stats_images=n_stats, seed=seed, device=str(device))
    return StudentTraining(model, history, settings, time.perf_counter() - start_time)
