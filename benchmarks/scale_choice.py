"""Benchmark: can the validation anomalies choose the scale? (one scale or the fusion)

    python benchmarks/scale_choice.py --dataset mnist --classes 0-9 --threads 1 \
        --out book/results/scale_choice.csv

The benchmark tables fuse the scales with equal weights (Eq. 13), and on
the test split the fusion does not beat the best single scale everywhere.
Choosing per class between ``p = 17``, ``p = 33`` and their fusion on the
test split would be tuning on it; this benchmark measures whether the
synthetic validation anomalies, which use training-class images only, can
make that choice instead.

For each class it trains the students of every scale once, with the fast
protocol's settings (those of ``python -m ust benchmark`` in
``book/results/README.md``: shipped teachers, ``M = 3``, 100 steps of 8
images, Adam at 1e-3, seed 0; the same students, on the same CPU and with
one thread, as ``mnist.csv``). Per class and scale (``17``, ``33``, then
``fused``), a row with

* ``val_auroc``, ``val_auroc_rotate``, ``val_auroc_splice``,
  ``val_auroc_swap``: normal validation images against the same images
  with a synthetic stroke, a quarter turn, spliced to another image, or
  with their halves swapped (:func:`ust.experiments.validation_aurocs_by_scale`);
* ``auroc``, ``auroc_error``, ``auroc_variance``: the one-class test
  AUROC on the benchmark's fixed stratified test subset, scored as
  ``python -m ust benchmark`` scores it (they repeat the benchmark table,
  which ``tests/test_report.py`` checks: the same students). Reported,
  never used to choose.

``--out`` keeps the rows of other classes and datasets already in the file
and replaces those it measures again. At the end of each class it prints
the scale each validation anomaly chooses and its test AUROC.
"""

from __future__ import annotations

import os
import time

import ust
from ust.data import one_class_split
from ust.experiments import (FUSED, component_scores, hardware_description, parse_classes, validation_aurocs_by_scale,
                             validation_column, write_rows)
from ust.metrics import image_auroc
from ust.report import SCALE_CHOICE_COLUMNS, merge_scale_choice_rows, read_scale_choice
from ust.scores import SCORE_COMPONENTS
from ust.training import train_students

from _common import start, student_parser  # benchmarks/_common.py: the options the student benchmarks share

#: The validation anomalies of the table, in the order of its columns.
KINDS = ("stroke", "rotate", "splice", "swap")


def scale_rows(splits, label: int, *, scales: list[int], n_students: int, iterations: int, batch_size: int,
               lr: float, max_test: int, seed: int, progress: bool) -> list[dict]:
    """Train the students of one class at every scale; one row per scale and the fusion (see the module docstring)."""
    teachers = [ust.pretrained_teacher(p) for p in scales]
    data = one_class_split(splits, label, channels=teachers[0].in_channels, max_test=max_test, seed=seed)
    models, test, seconds = [], {}, {}
    for teacher in teachers:
        begin = time.perf_counter()
        model = train_students(teacher, data.train, n_students=n_students, iterations=iterations,
                               batch_size=batch_size, lr=lr, seed=seed, progress=progress).model
        model.calibrate(data.val)                       # as python -m ust benchmark: all validation images
        seconds[str(teacher.patch_size)] = time.perf_counter() - begin
        test[str(teacher.patch_size)] = component_scores(model, data.test, SCORE_COMPONENTS)
        models.append(model)
    test[FUSED] = {c: sum(s[c] for s in test.values()) / len(scales) for c in SCORE_COMPONENTS}
    seconds[FUSED] = sum(seconds.values())
    validation = validation_aurocs_by_scale(models, data.val, kinds=KINDS, seed=seed)
    rows = []
    for scale, aurocs in validation.items():
        rows.append(dict(dataset=splits.name, normal_class=label, class_name=data.class_name, scale=scale,
                         n_students=n_students, iterations=iterations, batch_size=batch_size, lr=lr, seed=seed,
                         **aurocs, auroc=image_auroc(test[scale]["both"], data.test_labels),
                         auroc_error=image_auroc(test[scale]["error"], data.test_labels),
                         auroc_variance=image_auroc(test[scale]["variance"], data.test_labels),
                         n_test=len(data.test), train_seconds=round(seconds[scale], 1),
                         hardware=hardware_description()))
    for kind in KINDS:
        pick = max(rows, key=lambda r: r[validation_column(kind)])     # ties: the first, the smallest scale
        print(f"class {data.class_name}: validation by {kind} chooses {pick['scale']} "
              f"(test AUROC {pick['auroc']:.4f}; " + ", ".join(f"{r['scale']} {r['auroc']:.4f}" for r in rows)
              + ")", flush=True)
    return rows


def main() -> None:
    parser = student_parser(__doc__, classes=["0-9"], out_help="class and scale")
    parser.add_argument("--scales", type=int, nargs="+", default=[17, 33], choices=ust.PATCH_SIZES)
    parser.add_argument("--iterations", type=int, default=100)
    args = parser.parse_args()
    if len(args.scales) < 2:
        raise SystemExit(f"--scales: a choice needs at least two scales; got {args.scales}.")
    splits = start(args)
    for label in parse_classes(args.classes, splits.classes):
        rows = scale_rows(splits, label, scales=args.scales, n_students=args.students, iterations=args.iterations,
                          batch_size=args.batch_size, lr=args.lr, max_test=args.max_test, seed=args.seed,
                          progress=not args.no_progress)
        if args.out:
            old = read_scale_choice(args.out).to_dict("records") if os.path.isfile(args.out) else []
            write_rows(args.out, merge_scale_choice_rows(old, rows), columns=SCALE_CHOICE_COLUMNS)


if __name__ == "__main__":
    main()
