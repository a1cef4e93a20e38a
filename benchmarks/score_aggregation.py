"""Benchmark: one image score from a map, the mean or the maximum? (score aggregation)

    python benchmarks/score_aggregation.py --dataset mnist --classes 0-9 --threads 1 \
        --out book/results/score_aggregation.csv

The paper scores pixels; a one-class benchmark needs one number per image,
and ``ust`` takes the mean of the map (:func:`ust.image_score`, chapter
*Uncertainty*). The maximum is the usual choice for small local defects.
This benchmark measures which one suits the one-class protocol, where the
whole image belongs to another class.

For each class it trains the students once, with the fast protocol's
settings (those of ``python -m ust benchmark`` in ``book/results/README.md``:
shipped ``p = 33`` teacher, ``M = 3``, 100 steps of 8 images, Adam at 1e-3,
seed 0; the same students, on the same CPU, as the ``p = 33`` column of
``mnist.csv``), scores them once and reduces each map both ways. Per class
and reduction, a row with (:func:`ust.experiments.checkpoint_aurocs_by_reduction`)

* ``val_auroc`` and ``val_auroc_rotate``: normal validation images
  against the same images with a synthetic stroke, or turned by a quarter
  turn. They use training-class data only: a user may choose the reduction
  with them;
* ``auroc``, ``auroc_error``, ``auroc_variance``: the one-class test AUROC
  on the benchmark's fixed stratified test subset. Reported, never used to
  choose.

``--out`` keeps the rows of other classes and datasets already in the file
and replaces those it measures again. At the end it prints, per class,
the reduction the validation scores choose and its test AUROC.
"""

from __future__ import annotations

import os
import time

import ust
from ust.data import one_class_split
from ust.experiments import checkpoint_aurocs_by_reduction, hardware_description, parse_classes, write_rows
from ust.report import AGGREGATION_COLUMNS, merge_aggregation_rows, read_aggregation
from ust.scores import IMAGE_REDUCTIONS
from ust.training import train_students

from _common import start, student_parser  # benchmarks/_common.py: the options both student benchmarks share


def aggregation_rows(splits, label: int, *, patch_size: int, n_students: int, iterations: int, batch_size: int,
                     lr: float, max_test: int, seed: int, progress: bool) -> list[dict]:
    """Train the students of one class once; one row per reduction (see the module docstring)."""
    teacher = ust.pretrained_teacher(patch_size)
    data = one_class_split(splits, label, channels=teacher.in_channels, max_test=max_test, seed=seed)
    start = time.perf_counter()
    model = train_students(teacher, data.train, n_students=n_students, iterations=iterations,
                           batch_size=batch_size, lr=lr, seed=seed, progress=progress).model
    trained = time.perf_counter() - start
    rows = []
    by_reduction = checkpoint_aurocs_by_reduction(model, data, seed=seed, reductions=IMAGE_REDUCTIONS)
    for reduction, aurocs in by_reduction.items():
        row = dict(dataset=splits.name, normal_class=label, class_name=data.class_name, patch_size=patch_size,
                   n_students=n_students, iterations=iterations, batch_size=batch_size, lr=lr, seed=seed,
                   reduction=reduction, **aurocs, n_test=len(data.test), train_seconds=round(trained, 1),
                   hardware=hardware_description())
        rows.append(row)
        print(f"class {data.class_name} {reduction:>4}: validation {row['val_auroc']:.4f} "
              f"(turns {row['val_auroc_rotate']:.4f})  test {row['auroc']:.4f} (error {row['auroc_error']:.4f}, "
              f"variance {row['auroc_variance']:.4f})", flush=True)
    return rows


def main() -> None:
    parser = student_parser(__doc__, classes=["0-9"], out_help="class and reduction")
    parser.add_argument("--iterations", type=int, default=100)
    args = parser.parse_args()
    splits = start(args)
    for label in parse_classes(args.classes, splits.classes):
        rows = aggregation_rows(splits, label, patch_size=args.patch_size, n_students=args.students,
                                iterations=args.iterations, batch_size=args.batch_size, lr=args.lr,
                                max_test=args.max_test, seed=args.seed, progress=not args.no_progress)
        if args.out:
            old = read_aggregation(args.out).to_dict("records") if os.path.isfile(args.out) else []
            write_rows(args.out, merge_aggregation_rows(old, rows), columns=AGGREGATION_COLUMNS)
        for column, name in (("val_auroc", "strokes"), ("val_auroc_rotate", "turns")):
            pick = max(rows, key=lambda r: r[column])      # ties: the first reduction, the mean
            print(f"class {rows[0]['class_name']}: validation by {name} chooses the {pick['reduction']} "
                  f"(test AUROC {pick['auroc']:.4f})", flush=True)


if __name__ == "__main__":
    main()
