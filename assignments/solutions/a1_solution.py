"""Assignment 1 (MNIST): the student loss, the anomaly scores and their normalisation.

Uninformed Students (Bergmann et al., CVPR 2020), Sec. 3.2, Eqs. 8-12.
Fill in the seven functions marked ``TODO`` (each ``raise
NotImplementedError`` is yours to replace), then check them in the notebook
with ``ust.grading.check(a1_starter)`` or from a shell with
``python -m ust.grading check a1_starter.py``.

Rules: use PyTorch operations only (no NumPy; no ``.item()`` or
``float()`` in a function that returns a tensor, so that gradients flow),
do not change the arguments in place, and return tensors of the inputs'
dtype. Do not call the ``ust`` function of the same name: the point
is to write the equation yourself (the reference implementation is what the
checks compare with).

The functions after the line "Given" are complete: they train the students
and score images with *your* functions, so the AUROCs you measure in the
notebook are those of your implementation.
"""
# SOLUTION VERSION: keep it out of the students' hands. ### SOLUTION ONLY
# The starter, book/assignments/a1_starter.py, is made from this file with ### SOLUTION ONLY
#   python -m ust.grading make-starter assignments/solutions/a1_solution.py \ ### SOLUTION ONLY
#       -o book/assignments/a1_starter.py ### SOLUTION ONLY

from __future__ import annotations

import time

import torch

import ust
from ust.metrics import image_auroc


# =========================================================================== your part

def channel_statistics(descriptors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation of teacher descriptors (Sec. 3.2).

    The teacher's descriptors are normalised with the mean and standard
    deviation of each of the ``d`` channels, taken over all training images
    and all positions.

    Args:
        descriptors: ``(B, d, H, W)`` teacher descriptors.

    Returns:
        ``(mean, std)``, each of shape ``(d,)`` and the dtype of
        ``descriptors``; ``std`` is the unbiased estimate (divide by
        ``N - 1``, torch.std's default), ``N = B * H * W``.
    """
    # TODO: reduce over the batch and the two spatial axes (dims 0, 2, 3), keep the channel axis (dim 1).
    ### BEGIN SOLUTION
    flat = descriptors.transpose(0, 1).reshape(descriptors.shape[1], -1)  # (d, B*H*W)
    return flat.mean(1), flat.std(1)
    ### END SOLUTION


def normalize_descriptors(descriptors: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
                          eps: float = 1e-6) -> torch.Tensor:
    """Teacher normalisation (Sec. 3.2): ``(y - mean) / std`` for every channel.

    Args:
        descriptors: ``(B, d, H, W)`` teacher descriptors ``y``.
        mean: ``(d,)`` channel means.
        std: ``(d,)`` channel standard deviations; values below ``eps`` are
            raised to ``eps`` (a dead channel must not divide by zero).
        eps: The floor for ``std``.

    Returns:
        ``(B, d, H, W)``, the dtype of ``descriptors``.
    """
    # TODO: reshape mean and std to (1, d, 1, 1) so that they act on the channel axis, floor std at eps,
    # then subtract and divide.
    ### BEGIN SOLUTION
    shape = (1, -1, 1, 1)
    mean = mean.to(descriptors).reshape(shape)
    std = std.to(descriptors).clamp_min(eps).reshape(shape)
    return (descriptors - mean) / std
    ### END SOLUTION


def student_regression_loss(student: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Student loss L(S_i), Eq. 8: squared distance to the normalised teacher, averaged over positions.

    .. math::

        \\mathcal L(S_i) = \\frac{1}{wh} \\sum_{(r,c)}
        \\lVert \\mu^{S_i}_{(r,c)} - \\tilde{\\mathbf y}_{(r,c)} \\rVert_2^2

    Average over the images of the batch as well.

    Args:
        student: ``(B, d, H, W)`` the student's output (it carries gradients).
        target: ``(B, d, H, W)`` normalised teacher descriptors.

    Returns:
        A scalar (0-dim) tensor that ``backward()`` can differentiate.
    """
    # TODO: squared difference, summed over the channels, averaged over images and positions.
    ### BEGIN SOLUTION
    return (student - target).square().sum(1).mean()
    ### END SOLUTION


def regression_error(predictions: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Regression error e, Eq. 10: squared distance of the ensemble mean (Eq. 9) to the target.

    Args:
        predictions: ``(M, B, d, H, W)`` the M students' outputs, stacked.
        target: ``(B, d, H, W)`` normalised teacher descriptors.

    Returns:
        ``(B, H, W)``.
    """
    # TODO: average the M predictions (Eq. 9), then the squared distance to the target over the channels.
    ### BEGIN SOLUTION
    return (predictions.mean(0) - target).square().sum(1)
    ### END SOLUTION


def predictive_variance(predictions: torch.Tensor) -> torch.Tensor:
    """Predictive variance v, Eq. 11: how much the students disagree.

    .. math:: v_{(r,c)} = \\frac1M \\sum_i \\lVert \\mu^{S_i}_{(r,c)} \\rVert_2^2 - \\lVert \\mu_{(r,c)} \\rVert_2^2

    which equals the mean squared distance of the predictions from their
    mean; that second form cannot turn negative through rounding.

    Args:
        predictions: ``(M, B, d, H, W)``.

    Returns:
        ``(B, H, W)``, non-negative; 0 where the students agree (and for M = 1).
    """
    # TODO: Eq. 11 (or its equivalent, numerically safer form).
    ### BEGIN SOLUTION
    mean = predictions.mean(0)
    return (predictions - mean).square().sum(2).mean(0)
    ### END SOLUTION


def fit_score_normalization(errors: torch.Tensor, variances: torch.Tensor) -> ust.ScoreNormalization:
    """Means and standard deviations of e and v on anomaly-free validation maps (Sec. 3.2).

    Args:
        errors: ``(N, H, W)`` regression error maps of validation images.
        variances: ``(N, H, W)`` predictive variance maps of the same images.

    Returns:
        ``ust.ScoreNormalization(error_mean, error_std, variance_mean,
        variance_std)``: four Python floats, taken over all pixels of all
        maps; the standard deviations are unbiased (torch.std's default).
    """
    # TODO: four numbers over all pixels of all maps; float(...) turns a 0-dim tensor into a Python float.
    ### BEGIN SOLUTION
    e, v = errors.detach().reshape(-1).double(), variances.detach().reshape(-1).double()
    return ust.ScoreNormalization(float(e.mean()), float(e.std()), float(v.mean()), float(v.std()))
    ### END SOLUTION


def anomaly_score(error: torch.Tensor, variance: torch.Tensor,
                  normalization: ust.ScoreNormalization) -> torch.Tensor:
    """Combined anomaly score, Eq. 12: the normalised error plus the normalised variance.

    .. math:: \\tilde e + \\tilde v = \\frac{e - e_\\mu}{e_\\sigma} + \\frac{v - v_\\mu}{v_\\sigma}

    Args:
        error: ``(B, H, W)`` from :func:`regression_error`.
        variance: ``(B, H, W)`` from :func:`predictive_variance`.
        normalization: From :func:`fit_score_normalization`.

    Returns:
        ``(B, H, W)``: 0 is an average anomaly-free pixel.
    """
    # TODO: Eq. 12 with normalization.error_mean, .error_std, .variance_mean, .variance_std.
    ### BEGIN SOLUTION
    n = normalization
    return (error - n.error_mean) / n.error_std + (variance - n.variance_mean) / n.variance_std
    ### END SOLUTION


# =========================================================================== given: training and scoring
# Nothing to change below. These helpers call YOUR functions above.

def teacher_descriptors(model: ust.StudentTeacher, images: torch.Tensor, offset=(0, 0)) -> torch.Tensor:
    """Raw teacher descriptors on the networks' native lattice (stride 4 for p = 33)."""
    with torch.no_grad():
        return model.dense_teacher.strided(images, offset)


def student_predictions(model: ust.StudentTeacher, images: torch.Tensor, offset=(0, 0)) -> torch.Tensor:
    """The students' outputs stacked as ``(M, B, d, h, w)``, on the same lattice."""
    return torch.stack([s.strided(images, offset) for s in model.dense_students])


def train_students(teacher: ust.PatchNet, images: torch.Tensor, *, n_students: int = 3, iterations: int = 100,
                   batch_size: int = 8, lr: float = 1e-3, stats_images: int = 500, seed: int = 0,
                   progress: bool = True) -> tuple[ust.StudentTeacher, list[float]]:
    """Train M students on anomaly-free images with YOUR loss and teacher normalisation (Sec. 3.2).

    1. The teacher's channel statistics on up to ``stats_images`` training
       images (your :func:`channel_statistics`).
    2. ``iterations`` Adam steps: a random batch, a random lattice offset,
       targets = your :func:`normalize_descriptors` of the teacher's
       descriptors, loss = the sum over students of your
       :func:`student_regression_loss`.

    Returns:
        ``(model, losses)``: a :class:`ust.StudentTeacher` holding the
        teacher, the students and the statistics, and the mean loss per
        student at every iteration.
    """
    generator = ust.seed_everything(seed)
    students = ust.make_students(teacher.patch_size, n_students, out_dim=teacher.out_dim,
                                 in_channels=teacher.in_channels, seed=seed)
    d = teacher.out_dim
    model = ust.StudentTeacher(teacher, students, torch.zeros(d), torch.ones(d))
    pick = torch.randperm(len(images), generator=generator)[:stats_images]
    raw = torch.cat([teacher_descriptors(model, images[pick[i:i + 64]]) for i in range(0, len(pick), 64)])
    mean, std = channel_statistics(raw)
    model.mean.copy_(mean.detach().float())
    model.std.copy_(std.detach().float())
    optimizer = torch.optim.Adam([p for s in model.students for p in s.parameters()], lr=lr, weight_decay=1e-5)
    model.train()
    losses, start = [], time.perf_counter()
    for step in range(iterations):
        batch = images[torch.randint(len(images), (batch_size,), generator=generator)]
        offset = tuple(torch.randint(model.stride, (2,), generator=generator).tolist())
        target = normalize_descriptors(teacher_descriptors(model, batch, offset), model.mean, model.std)
        loss = sum(student_regression_loss(s.strided(batch, offset), target) for s in model.dense_students)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item() / n_students)
        if progress and (step + 1) % max(1, iterations // 5) == 0:
            print(f"  iteration {step + 1}/{iterations}: loss {losses[-1]:.3f} ({time.perf_counter() - start:.0f} s)")
    return model.eval(), losses


@torch.no_grad()
def error_and_variance(model: ust.StudentTeacher, images: torch.Tensor,
                       batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """YOUR regression error and predictive variance maps ``(N, h, w)`` on the native lattice."""
    errors, variances = [], []
    for i in range(0, len(images), batch_size):
        batch = images[i:i + batch_size]
        target = normalize_descriptors(teacher_descriptors(model, batch), model.mean, model.std)
        predictions = student_predictions(model, batch)
        errors.append(regression_error(predictions, target))
        variances.append(predictive_variance(predictions))
    return torch.cat(errors), torch.cat(variances)


def calibrate(model: ust.StudentTeacher, val_images: torch.Tensor):
    """Fit YOUR score normalisation on anomaly-free validation images and store it on the model."""
    errors, variances = error_and_variance(model, val_images)
    model.normalization = fit_score_normalization(errors, variances)
    return model.normalization


def image_scores(model: ust.StudentTeacher, images: torch.Tensor) -> torch.Tensor:
    """One score per image ``(N,)``: the mean of YOUR anomaly score map (Eq. 12)."""
    if model.normalization is None:
        raise ValueError("call calibrate(model, val_images) first.")
    errors, variances = error_and_variance(model, images)
    return anomaly_score(errors, variances, model.normalization).mean((1, 2))


def auroc_per_digit(scores: torch.Tensor, test_classes: torch.Tensor, normal_class: int) -> dict[int, float]:
    """AUROC of the normal class against each other digit alone: which digits pass for normal?"""
    normal = test_classes == normal_class
    out = {}
    for digit in sorted(set(test_classes.tolist()) - {normal_class}):
        other = test_classes == digit
        keep = normal | other
        out[digit] = image_auroc(scores[keep], other[keep].long())
    return out
