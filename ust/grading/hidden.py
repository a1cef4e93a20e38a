"""Hidden checks for grading: more cases of the same functions than the public checks.

Other shapes and batch sizes, ``M = 1``, float64 inputs, square maps where a
wrong broadcast goes unnoticed, a dead teacher channel, nearly identical
students with large descriptors, ties and degenerate inputs of the AUROC,
and the errors the starter's docstrings promise. They run with
``python -m ust.grading grade`` (and ``check(..., hidden=True)``), not in the
notebook's check cell, so that passing the public checks does not mean
fitting them.

They reuse the check functions of :mod:`ust.grading.checks`; the reference
is again the :mod:`ust` implementation on the same inputs.
"""

from __future__ import annotations

import torch

from .checks import (
    PUBLIC,
    _case,
    check_auroc_rejects_one_class,
    check_fuse_scales_rejects_mismatch,
    check_image_score_rejects_unknown,
)

__all__ = ["HIDDEN", "hidden_checks", "all_checks"]

f64 = torch.float64

#: The hidden checks per assignment.
HIDDEN = {
    1: [
        _case("channel_statistics", "one image, d = 8, 6x7 maps", True, B=1, d=8, H=6, W=7, seed=11),
        _case("channel_statistics", "float64, batch of 5", True, B=5, d=3, H=2, W=2, dtype=f64, seed=12),
        _case("normalize_descriptors", "d equal to W (a wrong broadcast would pass silently)", True,
              B=3, d=4, H=2, W=4, seed=13),
        _case("normalize_descriptors", "float64, one image", True, B=1, d=6, H=5, W=3, dtype=f64, seed=14),
        _case("normalize_descriptors", "a dead channel (std 0) stays finite", True, dead_channel=True, seed=15),
        _case("student_regression_loss", "one image, 1x1 maps", True, B=1, d=7, H=1, W=1, seed=16),
        _case("student_regression_loss", "float64, batch of 4", True, B=4, d=3, H=5, W=2, dtype=f64, seed=17),
        _case("student_regression_loss", "gradient, float64, other shape", True, B=3, d=2, H=4, W=4, dtype=f64,
              seed=18, gradient=True),
        _case("regression_error", "M = 1", True, M=1, B=2, d=4, H=3, W=3, seed=19),
        _case("regression_error", "M = 5, float64", True, M=5, B=1, d=3, H=2, W=6, dtype=f64, seed=20),
        _case("predictive_variance", "M = 1 gives 0", True, M=1, B=2, d=4, H=3, W=3, seed=21),
        _case("predictive_variance", "M = 2, float64", True, M=2, B=3, d=6, H=2, W=2, dtype=f64, seed=22),
        _case("predictive_variance", "identical students give 0", True, M=4, B=2, d=8, H=3, W=3, seed=23,
              identical=True),
        _case("predictive_variance", "large descriptors (offset 100) stay non-negative", True, M=3, B=2, d=16,
              H=4, W=4, seed=24, shift=100.0),
        _case("fit_score_normalization", "one validation map, 7x3", True, B=1, H=7, W=3, seed=25),
        _case("fit_score_normalization", "float64 maps", True, B=4, H=2, W=2, dtype=f64, seed=26),
        _case("anomaly_score", "one image, 1x1", True, B=1, H=1, W=1, seed=27),
        _case("anomaly_score", "float64 maps keep their dtype", True, B=3, H=5, W=2, dtype=f64, seed=28),
    ],
    2: [
        _case("fuse_scales", "one scale comes back unchanged", True, L=1, shape=(2, 3, 3), seed=31),
        _case("fuse_scales", "two scales of image scores (B,)", True, L=2, shape=(6,), seed=32),
        _case("fuse_scales", "float64, five scales", True, L=5, shape=(1, 2, 7), dtype=f64, seed=33),
        _case("fuse_scales", "maps of different shapes raise ValueError", True,
              run=check_fuse_scales_rejects_mismatch),
        _case("ablation_scores", "float64, one image", True, B=1, H=4, W=4, dtype=f64, seed=34),
        _case("ablation_scores", "batch of 5, 1x1 maps", True, B=5, H=1, W=1, seed=35),
        _case("image_score", "mean, float64, one image", True, B=1, H=3, W=3, dtype=f64, seed=36),
        _case("image_score", "max, batch of 6, 1x8 maps", True, B=6, H=1, W=8, seed=37, reduction="max"),
        _case("image_score", "an unknown reduction raises ValueError", True, run=check_image_score_rejects_unknown),
        _case("auroc", "2,000 scores with many ties", True, n=2000, seed=38, ties=True),
        _case("auroc", "float64 scores, n = 7", True, n=7, seed=39, dtype=f64),
        _case("auroc", "all scores equal give 0.5", True, run=lambda fn: _all_equal(fn)),
        _case("auroc", "one class only raises ValueError", True, run=check_auroc_rejects_one_class),
    ],
}


def _all_equal(fn) -> None:
    from ._framework import call, expect_number

    labels = torch.tensor([0, 1, 0, 1, 1, 0, 0, 0])
    expect_number(call(fn, torch.full((8,), 3.0), labels), 0.5, what="the AUROC of constant scores",
                  alternatives=[(0.0, "ties count as one half: constant scores give 0.5, you counted ties as 0."),
                                (1.0, "ties count as one half: constant scores give 0.5, you counted ties as 1.")])


def hidden_checks(assignment: int) -> list:
    """The hidden checks of an assignment (1 or 2)."""
    if assignment not in HIDDEN:
        raise ValueError(f"assignment must be 1 or 2; got {assignment!r}.")
    return list(HIDDEN[assignment])


def all_checks(assignment: int) -> list:
    """Public then hidden checks, grouped by function in the starter's order."""
    from .checks import FUNCTIONS

    checks = PUBLIC[assignment] + hidden_checks(assignment)
    order = {name: i for i, name in enumerate(FUNCTIONS[assignment])}
    return sorted(checks, key=lambda c: order.get(c.function, len(order)))
