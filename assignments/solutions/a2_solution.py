"""Assignment 2 (CIFAR-10): multi-scale fusion, the score ablation and the AUROC.

Uninformed Students (Bergmann et al., CVPR 2020), Sec. 3.3 (Eq. 13) and
Sec. 4.1 (Table 1). Fill in the four functions marked ``TODO`` (each
``raise NotImplementedError`` is yours to replace), then check them in the
notebook with ``ust.grading.check(a2_starter)`` or from a shell with
``python -m ust.grading check a2_starter.py``.

Rules: use PyTorch operations only inside the functions (the AUROC may
return a Python float), do not change the arguments in place, and keep the
inputs' dtype. Do not call the ``ust`` function of the same name (nor
scikit-learn for the AUROC): write the equation yourself.

The helpers after the line "Given" are complete. They train the students of
one scale with ``ust`` (the equations of assignment 1) and score images with
*your* functions below.
"""
# SOLUTION VERSION: keep it out of the students' hands. ### SOLUTION ONLY
# The starter, book/assignments/a2_starter.py, is made from this file with ### SOLUTION ONLY
#   python -m ust.grading make-starter assignments/solutions/a2_solution.py \ ### SOLUTION ONLY
#       -o book/assignments/a2_starter.py ### SOLUTION ONLY

from __future__ import annotations

import time
from typing import Sequence

import torch

import ust


# =========================================================================== your part

def fuse_scales(scores: Sequence[torch.Tensor]) -> torch.Tensor:
    """Multi-scale score, Eq. 13: the mean of the scales' scores.

    .. math:: \\frac1L \\sum_{l=1}^{L} \\big(\\tilde e^{(l)} + \\tilde v^{(l)}\\big)

    Args:
        scores: ``L >= 1`` tensors of one shape, one per patch size: score
            maps ``(B, H, W)`` or image scores ``(B,)``.

    Returns:
        A tensor of that shape; with one scale, that scale's scores.

    Raises:
        ValueError: If the tensors differ in shape (or the list is empty).
    """
    # TODO: check the shapes, then average over the L scales.
    ### BEGIN SOLUTION
    scores = list(scores)
    if not scores:
        raise ValueError("fuse_scales needs at least one score tensor.")
    for s in scores[1:]:
        if s.shape != scores[0].shape:
            raise ValueError(f"all scales must have one shape; got {tuple(scores[0].shape)} and {tuple(s.shape)}.")
    return torch.stack(scores).mean(0)
    ### END SOLUTION


def ablation_scores(error: torch.Tensor, variance: torch.Tensor,
                    normalization: ust.ScoreNormalization) -> dict[str, torch.Tensor]:
    """The three scores of the paper's ablation: error only, variance only, both (Eq. 12).

    Args:
        error: ``(B, H, W)`` regression error maps (Eq. 10).
        variance: ``(B, H, W)`` predictive variance maps (Eq. 11).
        normalization: Means and standard deviations from anomaly-free
            validation maps (``error_mean``, ``error_std``, ``variance_mean``,
            ``variance_std``).

    Returns:
        ``{"error": e~, "variance": v~, "both": e~ + v~}``, each ``(B, H, W)``,
        where ``e~ = (e - error_mean) / error_std`` and likewise ``v~``.
    """
    # TODO: standardise each term with its own statistics; "both" is their sum.
    ### BEGIN SOLUTION
    n = normalization
    e = (error - n.error_mean) / n.error_std
    v = (variance - n.variance_mean) / n.variance_std
    return {"error": e, "variance": v, "both": e + v}
    ### END SOLUTION


def image_score(score_map: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """One score per image from a score map.

    Args:
        score_map: ``(B, H, W)``.
        reduction: ``"mean"`` (over all positions) or ``"max"``.

    Returns:
        ``(B,)``.

    Raises:
        ValueError: For another ``reduction``.
    """
    # TODO: flatten the positions of each image, then mean or max.
    ### BEGIN SOLUTION
    if reduction not in ("mean", "max"):
        raise ValueError(f"reduction must be 'mean' or 'max'; got {reduction!r}.")
    flat = score_map.flatten(1)
    return flat.mean(1) if reduction == "mean" else flat.amax(1)
    ### END SOLUTION


def auroc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Area under the ROC curve: P(s_a > s_n) + P(s_a = s_n) / 2.

    The probability that a random anomalous image (label 1) scores higher
    than a random normal one (label 0), ties counting one half (the book's
    introduction, equation eq-auroc).

    Args:
        scores: ``(N,)`` higher means more anomalous.
        labels: ``(N,)`` 0 normal, 1 anomalous.

    Returns:
        A float in [0, 1].

    Raises:
        ValueError: If ``labels`` holds only one class.
    """
    # TODO: compare every anomalous score with every normal score (broadcasting), or use ranks.
    ### BEGIN SOLUTION
    labels = labels.reshape(-1).bool()
    scores = scores.reshape(-1).to(torch.float64)
    anomalous, normal = scores[labels], scores[~labels]
    if len(anomalous) == 0 or len(normal) == 0:
        raise ValueError("the AUROC needs normal (0) and anomalous (1) labels; got one class only.")
    diff = anomalous[:, None] - normal[None, :]
    return float((diff > 0).double().mean() + 0.5 * (diff == 0).double().mean())
    ### END SOLUTION


# =========================================================================== given: training and scoring
# Nothing to change below. These helpers call YOUR functions above.

def load_teachers(patch_sizes: Sequence[int] = (17, 33, 65), variant: str = "kc", *,
                  stand_ins: bool = False) -> dict[int, ust.PatchNet]:
    """The teacher of every scale: the shipped, pretrained one where this installation has it.

    ``ust.available_teachers()`` lists the shipped teachers. For a patch size
    without one, a note is printed and the scale is left out; with
    ``stand_ins=True`` (to time the full pipeline only) a randomly
    initialised network of the same architecture takes its place (its
    ``name`` starts with ``"random:"``): the pipeline and its computing time
    stay those of the real thing, but that scale's AUROCs say little about
    the method.

    Returns:
        ``{p: teacher}`` in the order of ``patch_sizes`` (eval mode).

    Raises:
        ValueError: If no scale is left (no teacher shipped and no stand-ins).
    """
    shipped = ust.available_teachers()
    teachers = {}
    for p in patch_sizes:
        if (p, variant) in shipped:
            teachers[p] = ust.pretrained_teacher(p, variant)
            continue
        have = ", ".join(f"p={q} {v}" for q, v in shipped) or "none"
        if stand_ins:
            torch.manual_seed(p)
            teachers[p] = ust.PatchNet(p).eval()
            teachers[p].name = f"random:{p}"
            print(f"note: no shipped p = {p} '{variant}' teacher in this installation (shipped: {have}); a RANDOM "
                  f"p = {p} network stands in, so the p = {p} numbers are not those of the method.")
        else:
            print(f"note: no shipped p = {p} '{variant}' teacher in this installation (shipped: {have}); "
                  f"scale p = {p} is left out.")
    if not teachers:
        raise ValueError(f"none of the patch sizes {tuple(patch_sizes)} has a shipped '{variant}' teacher; "
                         "use stand_ins=True, or reinstall ust.")
    return teachers


def scale_name(p: int, teacher: ust.PatchNet) -> str:
    """Row label of a scale in result tables: ``"p = 33"``, or ``"p = 17 (random)"`` for a stand-in."""
    return f"p = {p}" + (" (random)" if str(getattr(teacher, "name", "")).startswith("random:") else "")


def train_scale(teacher: ust.PatchNet, train_images: torch.Tensor, *,
                n_students: int = 3, iterations: int = 40, batch_size: int = 8, lr: float = 1e-3,
                stats_images: int = 300, seed: int = 0) -> ust.StudentTeacher:
    """Train the M students of one scale (``ust.train_students``, Eq. 8) and return the model.

    Calibration happens later, per ensemble size, in :func:`scale_scores`.
    """
    start = time.perf_counter()
    run = ust.train_students(teacher, train_images, n_students=n_students, iterations=iterations,
                             batch_size=batch_size, lr=lr, stats_images=stats_images, seed=seed, progress=False)
    print(f"  p={teacher.patch_size}: {iterations} iterations, final loss {run.history['loss'][-1]:.3f} "
          f"({time.perf_counter() - start:.0f} s)")
    return run.model


@torch.no_grad()
def error_variance_maps(model: ust.StudentTeacher, images: torch.Tensor, ensemble_sizes: Sequence[int] = (None,),
                        batch_size: int = 50) -> dict:
    """Regression error and predictive variance maps on the native lattice, for ensembles of several sizes.

    ``ensemble_sizes``: use the first ``m`` students (``None``: all); one
    forward pass serves every size.

    Returns:
        ``{m: (errors, variances)}``, each ``(N, h, w)``.
    """
    out = {m: ([], []) for m in ensemble_sizes}
    for i in range(0, len(images), batch_size):
        batch = images[i:i + batch_size]
        predictions = model.predictions(batch, dense=False)
        target = model.teacher_targets(batch, dense=False)
        for m in ensemble_sizes:
            p = predictions if m is None else predictions[:m]
            out[m][0].append(ust.regression_error(p, target))
            out[m][1].append(ust.predictive_variance(p))
    return {m: (torch.cat(e), torch.cat(v)) for m, (e, v) in out.items()}


def scale_scores(model: ust.StudentTeacher, val_images: torch.Tensor, test_images: torch.Tensor, *,
                 ensemble_sizes: Sequence[int] = (None,), reduction: str = "mean") -> dict:
    """Image scores of one scale for every score component, with YOUR ablation_scores and image_score.

    The normalisation is fitted on ``val_images`` (anomaly-free) for each
    ensemble size.

    Returns:
        ``{m: {"error": (N,), "variance": (N,), "both": (N,)}}``.
    """
    val = error_variance_maps(model, val_images, ensemble_sizes)
    test = error_variance_maps(model, test_images, ensemble_sizes)
    out = {}
    for m in ensemble_sizes:
        normalization = ust.ScoreNormalization.fit(*val[m])
        if m == 1:  # one student: no variance at all; keep the term at 0 instead of dividing by 0
            normalization = ust.ScoreNormalization(normalization.error_mean, normalization.error_std, 0.0, 1.0)
        maps = ablation_scores(*test[m], normalization)
        out[m] = {k: image_score(v, reduction) for k, v in maps.items()}
    return out


def load_cifar10(root=None):
    """CIFAR-10 from the data roots or the cache folder, or ``None`` (with a note on how to get it).

    Looks for torchvision's ``cifar-10-batches-py`` or an arrays file
    ``cifar10.npz`` under ``root`` (default: the ``UST_DATA`` roots) and
    under the cache folder (``UST_CACHE``, default ``~/.cache/ust``); never
    downloads.
    """
    roots = ust.data.data_roots(root) + [ust.notebook.cache_dir()]
    try:
        return ust.data.load_dataset("cifar10", root=roots, download=False)
    except ust.data.DataUnavailableError as err:
        print(f"CIFAR-10 is not available here ({err.reason}). Put cifar10.npz (x_train, y_train, x_test, y_test) "
              "into ~/.cache/ust, e.g. decoded from the course's JPEG archive with "
              "`python unpack.py cifar10-jpeg.npz ~/.cache/ust/cifar10.npz`, or torchvision's "
              "cifar-10-batches-py into a folder named by UST_DATA.")
        return None


def receptive_fields_figure(image: torch.Tensor | None = None, patch_sizes: Sequence[int] = (17, 33, 65),
                            title: str = ""):
    """The patch each scale sees around the centre pixel of a 32x32 image (zero padding outside).

    Args:
        image: ``(3, H, W)`` in [0, 1], or ``None`` for a gray stand-in.
        patch_sizes: The scales.
        title: Figure title.

    Returns:
        The matplotlib figure.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    if image is None:
        image = torch.full((3, 32, 32), 0.6)
    h, w = image.shape[-2:]
    margin = max(patch_sizes) // 2 - min(h, w) // 2 + 2
    canvas = torch.zeros(3, h + 2 * margin, w + 2 * margin)
    canvas[:, margin:margin + h, margin:margin + w] = image
    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    ax.imshow(canvas.permute(1, 2, 0).clamp(0, 1).numpy())
    cy, cx = margin + h // 2, margin + w // 2
    for p, color in zip(patch_sizes, ("tab:orange", "tab:green", "tab:red", "tab:purple")):
        ax.add_patch(Rectangle((cx - p / 2 - 0.5, cy - p / 2 - 0.5), p, p, fill=False, lw=2, color=color,
                               label=f"p = {p}"))
    ax.plot([cx], [cy], "w+", markersize=10)
    ax.set_axis_off()
    ax.legend(loc="upper right", fontsize="small", framealpha=0.9)
    ax.set_title(title or f"What one descriptor sees ({h}x{w} image, zero padding outside)", fontsize="small")
    return fig
