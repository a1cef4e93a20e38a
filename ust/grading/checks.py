"""Public checks of the two course assignments: what a student runs while working.

Each check calls one student function on small fixed inputs (seeded, so the
same every time) and compares the result with the reference, the :mod:`ust`
implementation of the same equation, computed on the same inputs. The
comparison goes type, shape, dtype, values; a wrong value that matches a
known mistake gets a message naming the mistake ("loss is 24x too large:
average over positions, do not sum").

The check functions below (``check_<function>``) take the student's function
and the case (shapes, dtype, seed); :data:`PUBLIC` lists the cases a student
sees, :mod:`ust.grading.hidden` reuses the same functions with more cases for
grading.

Assignment 1 (MNIST): :func:`channel_statistics`, ``normalize_descriptors``,
``student_regression_loss``, ``regression_error``, ``predictive_variance``,
``fit_score_normalization``, ``anomaly_score``.
Assignment 2 (CIFAR-10): ``fuse_scales``, ``ablation_scores``,
``image_score``, ``auroc``.
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import torch

import ust
from ust.metrics import image_auroc

from ._framework import Check, CheckFailed, call, expect_number, expect_raises, expect_tensor

__all__ = ["FUNCTIONS", "PUBLIC", "public_checks"]

#: The functions each assignment asks for, in the order of the starter module.
FUNCTIONS = {
    1: ("channel_statistics", "normalize_descriptors", "student_regression_loss", "regression_error",
        "predictive_variance", "fit_score_normalization", "anomaly_score"),
    2: ("fuse_scales", "ablation_scores", "image_score", "auroc"),
}


# --------------------------------------------------------------------------- inputs

def randn(shape, seed: int, dtype=torch.float32, scale: float = 1.0, shift: float = 0.0) -> torch.Tensor:
    """Seeded normal numbers, drawn in float64 then cast (the same values for every dtype)."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(tuple(shape), generator=g, dtype=torch.float64) * scale + shift).to(dtype)


def descriptors(B: int, d: int, H: int, W: int, seed: int, dtype=torch.float32) -> torch.Tensor:
    """Teacher-like descriptors whose channels have different means and spreads."""
    x = randn((B, d, H, W), seed, torch.float64)
    scale = torch.linspace(0.5, 3.0, d, dtype=torch.float64).view(1, d, 1, 1)
    shift = torch.linspace(-2.0, 4.0, d, dtype=torch.float64).view(1, d, 1, 1)
    return (x * scale + shift).to(dtype)


def _shape(*dims: int) -> str:
    return "(" + ", ".join(str(d) for d in dims) + ")"


# --------------------------------------------------------------------------- assignment 1

def check_channel_statistics(fn: Callable, B=2, d=5, H=3, W=4, dtype=torch.float32, seed=0) -> None:
    y = descriptors(B, d, H, W, seed, dtype)
    stats = ust.ChannelStatistics().update(y)
    mean, std = stats.mean.to(dtype), stats.std.to(dtype)
    result = call(fn, y)
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise CheckFailed(f"return a pair (mean, std); got {type(result).__name__}"
                          + (f" of length {len(result)}" if isinstance(result, (tuple, list)) else "") + ".")
    where = ("reduce over the batch and both spatial axes (dims 0, 2, 3) and keep the channel axis (dim 1): "
             f"one number per channel, shape ({d},).")
    expect_tensor(result[0], mean, what="mean", shape_hint=where)
    flat = y.permute(1, 0, 2, 3).reshape(d, -1)
    expect_tensor(result[1], std, what="std", shape_hint=where, alternatives=[
        (flat.std(1, unbiased=False), "std is the biased estimate (divided by N): use the unbiased one (divide by "
                                      "N - 1, torch.std's default), as ust.ChannelStatistics does."),
        (flat.var(1), "std holds the variance: the teacher normalisation divides by the standard deviation, its "
                      "square root."),
        (flat.var(1, unbiased=False), "std holds the (biased) variance: return the unbiased standard deviation."),
    ])


def check_normalize_descriptors(fn: Callable, B=2, d=5, H=3, W=4, dtype=torch.float32, seed=1,
                                dead_channel: bool = False) -> None:
    y = descriptors(B, d, H, W, seed, dtype)
    mean = randn((d,), seed + 100, dtype)
    std = randn((d,), seed + 200, torch.float64).abs().add(0.5).to(dtype)
    if dead_channel:
        std = std.clone()
        std[0] = 0.0
        y = y.clone()
        y[:, 0] = mean[0]
    expected = ust.normalize_descriptors(y, mean, std)
    m, s = mean.view(1, d, 1, 1), std.view(1, d, 1, 1)
    alternatives = [
        ((y - m) / s.square(), "normalise with the teacher's std, not the variance: (y - mean) / std."),
        (y / s, "subtract the channel mean before dividing by the std: (y - mean) / std."),
        ((y - m) * s, "divide by the std, do not multiply: (y - mean) / std."),
        (y - m, "after subtracting the mean, divide by the channel std."),
        (y - m / s, "mind the brackets: (y - mean) / std, not y - mean / std."),
    ]
    if W == d:
        alternatives.append(((y - mean) / std, "mean and std were applied along the last axis (W), not the "
                                               "channels: reshape them to (1, d, 1, 1) first."))
    if dead_channel:
        result = call(fn, y, mean, std)
        if isinstance(result, torch.Tensor) and not torch.isfinite(result).all():
            raise CheckFailed("a channel with std 0 (a dead teacher channel) gave inf or nan: floor the std at "
                              "eps = 1e-6 before dividing (std.clamp_min(eps)).")
        expect_tensor(result, expected, what="the normalised descriptors", alternatives=alternatives)
        return
    expect_tensor(call(fn, y, mean, std), expected, what="the normalised descriptors", alternatives=alternatives,
                  shape_hint="the result has the shape of the descriptors.")


def check_student_regression_loss(fn: Callable, B=2, d=5, H=3, W=4, dtype=torch.float32, seed=2,
                                  gradient: bool = False) -> None:
    student = randn((B, d, H, W), seed, dtype).requires_grad_(gradient)
    target = randn((B, d, H, W), seed + 1, dtype)
    expected = ust.student_regression_loss(student.detach(), target)
    sq = (student.detach() - target).square()
    n = B * H * W
    alternatives = [
        (sq.sum(), f"loss is {n}x too large: average over the positions (and images), do not sum them."),
        (sq.sum((1, 2, 3)).mean(), f"loss is {H * W}x too large: average over the {H}x{W} positions, do not sum."),
        (sq.sum((1, 2, 3)).sum() / (H * W), f"loss is {B}x too large: average over the images of the batch too."),
        (sq.mean(), f"loss is {d}x too small: sum the squared differences over the {d} channels (a squared "
                    "Euclidean distance), average only over positions and images."),
        (sq.sum(1).sqrt().mean(), "use the squared Euclidean distance, not the distance (no square root)."),
        (sq.sum().sqrt(), "use the squared distance per position, averaged; not the norm of everything."),
        (0.5 * expected, "loss is 2x too small: Eq. 8 has no factor 1/2."),
    ]
    result = call(fn, student, target)
    if isinstance(result, torch.Tensor) and result.dim() > 0 and result.numel() > 1:
        raise CheckFailed(f"the loss should be one number (a 0-dim tensor); got shape {tuple(result.shape)}: "
                          "average over positions and images.")
    if isinstance(result, torch.Tensor) and result.dim() == 1:
        result = result.reshape(())
    expect_tensor(result, expected, what="the loss", alternatives=alternatives)
    if gradient:
        if not result.requires_grad:
            raise CheckFailed("the loss carries no gradient: compute it with torch operations on the student's "
                              "output (no .item(), .detach() or numpy), so that backward() can train the students.")
        result.backward()
        reference = student.detach().clone().requires_grad_(True)
        ust.student_regression_loss(reference, target).backward()
        expect_tensor(student.grad, reference.grad, what="the gradient of the loss")


def _predictions(M, B, d, H, W, seed, dtype):
    return randn((M, B, d, H, W), seed, dtype), randn((B, d, H, W), seed + 1, dtype)


def check_regression_error(fn: Callable, M=3, B=2, d=5, H=3, W=4, dtype=torch.float32, seed=3) -> None:
    preds, target = _predictions(M, B, d, H, W, seed, dtype)
    expected = ust.regression_error(preds, target)
    alternatives = [
        ((preds - target).square().sum(2).mean(0), "you averaged the students' errors; Eq. 10 compares the ensemble's "
                                                   "mean prediction with the target: average the predictions first."),
        ((preds.mean(0) - target).square().sum(1).sqrt(), "use the squared distance (no square root)."),
        ((preds.mean(0) - target).square().mean(1), "sum the squared differences over the channels, do not average."),
        ((preds.mean(0) - target).square().sum(1).mean((1, 2)), "return the map (B, H, W), not one number per image."),
        ((preds - target).square().sum(2), "average the M predictions (dim 0) before comparing with the target."),
    ]
    expect_tensor(call(fn, preds, target), expected, what="the regression error", alternatives=alternatives,
                  shape_hint=f"one value per image and position: {_shape(B, H, W)}; sum over channels (dim 2 of "
                             "the predictions).")


def check_predictive_variance(fn: Callable, M=3, B=2, d=5, H=3, W=4, dtype=torch.float32, seed=4,
                              shift: float = 0.0, identical: bool = False) -> None:
    preds = randn((M, B, d, H, W), seed, dtype, shift=shift)
    if identical:
        preds = preds[:1].expand(M, -1, -1, -1, -1).clone()
    expected = ust.predictive_variance(preds)
    p64 = preds.to(torch.float64)
    mean_sq = p64.square().sum(2).mean(0).to(dtype)
    alternatives = [
        (-expected, "variance is negative: Eq. 11 is the mean of the squared norms minus the squared norm of the "
                    "mean, not the other way round."),
        (mean_sq, "you returned the mean squared norm of the predictions: did you subtract the squared norm of "
                  "the ensemble mean, ||mean||^2 (Eq. 11)?"),
        (expected * M / max(M - 1, 1), "divide by M, not M - 1 (Eq. 11 averages over the M students)."),
        (expected / d, "sum over the descriptor channels, do not average over them."),
        (expected.sqrt(), "return the variance, not its square root."),
        ((preds - preds.mean(0)).square().mean(0), "sum over the channels (dim 2): one variance per position."),
    ]
    result = call(fn, preds)
    if isinstance(result, torch.Tensor) and result.shape == expected.shape and result.dtype == expected.dtype:
        scale = float(mean_sq.abs().max()) if mean_sq.numel() else 1.0
        if M == 1 and not torch.isfinite(result).all():
            raise CheckFailed("with M = 1 the variance must be 0, but you got inf or nan: did you divide by M - 1?")
        if (result < -1e-4 * max(scale, 1.0)).any():
            raise CheckFailed("variance is negative somewhere: a variance cannot be; did you subtract the squared "
                              "mean from the mean of the squares (and not the other way round)?")
        if identical:
            if not torch.allclose(result.to(torch.float64), torch.zeros_like(result, dtype=torch.float64),
                                  atol=1e-4 * max(scale, 1.0)):
                raise CheckFailed("students that agree exactly must give variance 0 (up to rounding); got "
                                  f"up to {result.abs().max().item():.4g}.")
            return
        if M == 1 and result.abs().max() <= 1e-4 * max(scale, 1.0):
            return
    expect_tensor(result, expected, what="the predictive variance", alternatives=alternatives,
                  shape_hint=f"one value per image and position: {_shape(B, H, W)}.")


def _maps(shape, seed, dtype, scale=1.0, shift=0.0):
    return randn(shape, seed, dtype).abs().mul(scale).add(shift)


def _as_four(result) -> tuple:
    if isinstance(result, ust.ScoreNormalization):
        return (result.error_mean, result.error_std, result.variance_mean, result.variance_std)
    if isinstance(result, (tuple, list)) and len(result) == 4:
        return tuple(result)
    raise CheckFailed("return a ust.ScoreNormalization(error_mean, error_std, variance_mean, variance_std) (or "
                      f"those four numbers as a tuple); got {type(result).__name__}.")


def check_fit_score_normalization(fn: Callable, B=3, H=4, W=5, dtype=torch.float32, seed=5) -> None:
    errors = _maps((B, H, W), seed, dtype, scale=2.0, shift=1.0)
    variances = _maps((B, H, W), seed + 1, dtype, scale=0.5, shift=0.2)
    ref = ust.ScoreNormalization.fit(errors, variances)
    got = _as_four(call(fn, errors, variances))
    names = ("error_mean", "error_std", "variance_mean", "variance_std")
    maps = {"error": errors.to(torch.float64).reshape(-1), "variance": variances.to(torch.float64).reshape(-1)}
    for name, value, want in zip(names, got, (ref.error_mean, ref.error_std, ref.variance_mean, ref.variance_std)):
        flat = maps[name.split("_")[0]]
        alternatives = []
        if name.endswith("std"):
            alternatives = [
                (flat.std(unbiased=False).item(), f"{name} is the biased estimate: use the unbiased standard "
                                                  "deviation (torch.std's default), over all pixels of all maps."),
                (flat.var().item(), f"{name} holds a variance: return the standard deviation."),
            ]
        other = maps["variance" if name.startswith("error") else "error"]
        alternatives.append(((other.mean() if name.endswith("mean") else other.std()).item(),
                             f"{name} was computed from the wrong maps: errors and variances are swapped."))
        expect_number(value, want, what=name, alternatives=alternatives, rtol=1e-4, atol=1e-6)


def check_anomaly_score(fn: Callable, B=2, H=3, W=4, dtype=torch.float32, seed=6) -> None:
    error = _maps((B, H, W), seed, dtype, scale=2.0, shift=1.0)
    variance = _maps((B, H, W), seed + 1, dtype, scale=0.5, shift=0.2)
    norm = ust.ScoreNormalization(1.5, 0.8, 0.4, 0.25)
    expected = ust.anomaly_score(error, variance, norm)
    e, v = (error - 1.5) / 0.8, (variance - 0.4) / 0.25
    alternatives = [
        ((error - 1.5) / 0.8 ** 2 + (variance - 0.4) / 0.25 ** 2, "normalise with the standard deviations "
                                                                  "(error_std, variance_std), not the variances."),
        (error / 0.8 + variance / 0.25, "subtract the means (error_mean, variance_mean) before dividing."),
        (e, "you returned only the normalised error; Eq. 12 adds the normalised variance."),
        (v, "you returned only the normalised variance; Eq. 12 adds the normalised error."),
        ((error + variance - 1.9) / (0.8 + 0.25), "normalise each term with its own mean and std, then add."),
        (e * v, "add the two normalised terms (Eq. 12), do not multiply them."),
        ((error - 0.4) / 0.25 + (variance - 1.5) / 0.8, "the error's and the variance's statistics are swapped."),
    ]
    expect_tensor(call(fn, error, variance, norm), expected, what="the anomaly score", alternatives=alternatives,
                  shape_hint="the score map has the shape of the error map.")


# --------------------------------------------------------------------------- assignment 2

def check_fuse_scales(fn: Callable, L=3, shape=(2, 4, 5), dtype=torch.float32, seed=7) -> None:
    scores = [randn(shape, seed + i, dtype, shift=float(i)) for i in range(L)]
    expected = ust.fuse_scales(scores)
    stacked = torch.stack(scores)
    alternatives = [
        (stacked.sum(0), f"fused score is {L}x too large: Eq. 13 averages over the L = {L} scales, divide the sum "
                         "by L."),
        (stacked.amax(0), "Eq. 13 is the mean over the scales, not the maximum."),
        (scores[0], "you returned the first scale only: average all of them."),
        (scores[-1], "you returned the last scale only: average all of them."),
    ]
    expect_tensor(call(fn, list(scores)), expected, what="the fused score", alternatives=alternatives,
                  shape_hint="the fused map has the shape of each scale's map (average over the list, do not "
                             "stack them into the result).")


def check_fuse_scales_rejects_mismatch(fn: Callable) -> None:
    expect_raises(fn, ValueError, [torch.zeros(2, 4, 4), torch.zeros(2, 8, 8)],
                  what="maps of different shapes (2, 4, 4) and (2, 8, 8)")


def check_ablation_scores(fn: Callable, B=2, H=3, W=4, dtype=torch.float32, seed=8) -> None:
    error = _maps((B, H, W), seed, dtype, scale=2.0, shift=1.0)
    variance = _maps((B, H, W), seed + 1, dtype, scale=0.5, shift=0.2)
    norm = ust.ScoreNormalization(1.5, 0.8, 0.4, 0.25)
    result = call(fn, error, variance, norm)
    if not isinstance(result, dict):
        raise CheckFailed(f"return a dict with the keys 'error', 'variance' and 'both'; got {type(result).__name__}.")
    missing = [k for k in ("error", "variance", "both") if k not in result]
    if missing:
        raise CheckFailed(f"the dict lacks the key(s) {missing}; it needs 'error', 'variance' and 'both'.")
    e = ust.anomaly_score(error, variance, norm, "error")
    v = ust.anomaly_score(error, variance, norm, "variance")
    raw = {"error": error, "variance": variance}
    for key in ("error", "variance", "both"):
        expected = ust.anomaly_score(error, variance, norm, key)
        alternatives = [(v if key == "error" else e, f"'{key}' holds the other term: error and variance are swapped.")]
        if key != "both":
            alternatives.append((raw[key], f"'{key}' is not normalised: subtract its mean and divide by its std "
                                           "(Eq. 12's terms), so that the three scores are comparable."))
        else:
            alternatives.append((error + variance, "'both' must add the *normalised* terms (Eq. 12)."))
        expect_tensor(result[key], expected, what=f"scores['{key}']", alternatives=alternatives)


def check_image_score(fn: Callable, B=3, H=4, W=5, dtype=torch.float32, seed=9, reduction: str | None = None) -> None:
    maps = randn((B, H, W), seed, dtype, shift=0.5)
    if reduction is None:
        result, expected = call(fn, maps), ust.image_score(maps, "mean")
    else:
        result, expected = call(fn, maps, reduction), ust.image_score(maps, reduction)
    alternatives = [
        (maps.sum((1, 2)), f"image score is {H * W}x too large: average over the positions, do not sum."),
        (maps.mean((0, 2)), "average over the two spatial axes (dims 1 and 2), not over the batch."),
        (maps.flatten(1).amax(1) if reduction != "max" else maps.mean((1, 2)),
         "the reduction is swapped: 'mean' averages the map, 'max' takes its largest value."),
        (maps.amax(2).mean(1), "take the maximum over all positions at once (flatten H and W first)."),
    ]
    expect_tensor(result, expected, what=f"the image scores ({reduction or 'default'} reduction)",
                  alternatives=alternatives, shape_hint=f"one score per image: ({B},).")


def check_image_score_rejects_unknown(fn: Callable) -> None:
    expect_raises(fn, ValueError, torch.zeros(2, 3, 3), "median", what="reduction='median'")


def _scores_labels(n: int, seed: int, ties: bool, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    labels = (torch.rand(n, generator=g) < 0.4).long()
    labels[0], labels[1] = 0, 1
    scores = torch.randn(n, generator=g, dtype=torch.float64) + labels * 0.8
    if ties:
        scores = (scores * 2).round() / 2
    return scores.to(dtype), labels


def check_auroc(fn: Callable, n=40, seed=10, ties: bool = False, dtype=torch.float32) -> None:
    scores, labels = _scores_labels(n, seed, ties, dtype)
    expected = image_auroc(scores, labels)
    s, y = scores.to(torch.float64), labels.bool()
    diff = s[y][:, None] - s[~y][None, :]
    strict, loose = (diff > 0).double().mean().item(), (diff >= 0).double().mean().item()
    alternatives = [(1 - expected, "AUROC is 1 - expected: label 1 marks the anomalies and a higher score must "
                                   "mean more anomalous; compare anomalous against normal scores.")]
    if ties:
        rule = "ties count as one half (the AUROC's definition in the introduction)"
        alternatives += [(strict, f"{rule}: you counted them as 0."), (loose, f"{rule}: you counted them as 1.")]
    expect_number(call(fn, scores, labels), expected, what="the AUROC", alternatives=alternatives,
                  rtol=1e-6, atol=1e-9)


def check_auroc_rejects_one_class(fn: Callable) -> None:
    expect_raises(fn, ValueError, torch.rand(6), torch.zeros(6, dtype=torch.long),
                  what="labels of one class only (all 0): the AUROC is undefined")


CHECK_FUNCTIONS = {name: globals()[f"check_{name}"] for names in FUNCTIONS.values() for name in names}


def _case(function: str, name: str, hidden: bool = False, points: float = 1.0, run: Callable | None = None,
          **case) -> Check:
    return Check(name, function, run or partial(CHECK_FUNCTIONS[function], **case), points, hidden)


#: The public checks: one or two small fixed cases per function.
PUBLIC = {
    1: [
        _case("channel_statistics", "mean and std of a (2, 5, 3, 4) batch"),
        _case("normalize_descriptors", "values on a (2, 5, 3, 4) batch"),
        _case("student_regression_loss", "value on a (2, 5, 3, 4) batch"),
        _case("student_regression_loss", "gradient reaches the student's output", gradient=True),
        _case("regression_error", "M = 3 students, (2, 5, 3, 4) maps"),
        _case("predictive_variance", "M = 3 students, (2, 5, 3, 4) maps"),
        _case("fit_score_normalization", "statistics of (3, 4, 5) validation maps"),
        _case("anomaly_score", "score of (2, 3, 4) maps"),
    ],
    2: [
        _case("fuse_scales", "three (2, 4, 5) score maps"),
        _case("ablation_scores", "error, variance and both on (2, 3, 4) maps"),
        _case("image_score", "mean over (3, 4, 5) maps"),
        _case("image_score", "max over (3, 4, 5) maps", reduction="max"),
        _case("auroc", "40 scores without ties"),
        _case("auroc", "40 scores with ties", ties=True),
    ],
}


def public_checks(assignment: int) -> list[Check]:
    """The public checks of an assignment (1 or 2)."""
    if assignment not in PUBLIC:
        raise ValueError(f"assignment must be 1 or 2; got {assignment!r}.")
    return list(PUBLIC[assignment])
