"""Benchmark: can the validation anomalies choose the scale? (one scale or the fusion)

    python benchmarks/scale_choice.py --dataset mnist --classes 0-9 --threads 1 \
        --out book/results/scale_choice.csv
    python benchmarks/scale_choice.py --dataset ~/.cache/ust/cifar10.npz --classes 0-9 --threads 1 \
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
one thread, as ``mnist.csv`` and ``cifar10.csv``). Per class and scale (``17``, ``33``, then
``fused``), a row with

* ``val_auroc``, ``val_auroc_rotate``, ``val_auroc_splice``,
  ``val_auroc_swap``: normal validation images against the same images
  with a synthetic stroke, a quarter turn, spliced to another image, or
  with their halves swapped (:func:`ust.experiments.validation_aurocs_by_scale`);
* ``auroc``, ``auroc_error``, ``auroc_variance``: the one-class test
  AUROC on the benchmark's fixed stratified test subset, from
  :func:`ust.experiments.run_one_class`, the function behind
  ``python -m ust benchmark`` (they repeat the benchmark table, which
  ``tests/test_report.py`` checks: the same students). Reported, never
  used to choose.

``--out`` keeps the rows of other classes and datasets already in the file
and replaces those it measures again. At the end of each class it prints
the scale each validation anomaly chooses and its test AUROC.
"""

from __future__ import annotations

import os

import pandas as pd

import ust
from ust.experiments import (hardware_description, parse_classes, run_one_class, validation_aurocs_by_scale,
                             validation_column, write_rows)
from ust.report import (BUDGET_VALIDATION, SCALE_CHOICE_COLUMNS, merge_scale_choice_rows, read_scale_choice,
                        scale_choice_table)

from _common import start, student_parser  # benchmarks/_common.py: the options the student benchmarks share

#: The validation anomalies of the table, in the order of its columns.
KINDS = ("stroke", "rotate", "splice", "swap")


def scale_rows(splits, label: int, *, scales: list[int], n_students: int, iterations: int, batch_size: int,
               lr: float, max_test: int, seed: int, progress: bool) -> list[dict]:
    """Train the students of one class at every scale; one row per scale and the fusion (see the module docstring)."""
    trained = {}                                    # patch size -> (calibrated model, the class's split)
    test = run_one_class(splits, label, {p: ust.pretrained_teacher(p) for p in scales}, n_students=n_students,
                         iterations=iterations, batch_size=batch_size, lr=lr, seed=seed, max_test=max_test,
                         progress=progress, on_model=lambda p, model, data: trained.update({p: (model, data)}))
    test = {(row["scale"], row["components"]): row for row in test}
    data = trained[scales[0]][1]
    validation = validation_aurocs_by_scale([model for model, _ in trained.values()], data.val, kinds=KINDS,
                                            seed=seed)
    rows = []
    for scale, aurocs in validation.items():
        both = test[scale, "both"]
        rows.append(dict(dataset=splits.name, normal_class=label, class_name=data.class_name, scale=scale,
                         n_students=n_students, iterations=iterations, batch_size=batch_size, lr=lr, seed=seed,
                         **aurocs, auroc=both["auroc"], auroc_error=test[scale, "error"]["auroc"],
                         auroc_variance=test[scale, "variance"]["auroc"], n_test=both["n_test"],
                         train_seconds=round(both["train_seconds"], 1), hardware=hardware_description()))
    chosen = scale_choice_table(pd.DataFrame(rows)).loc[data.class_name]   # the choice rule of the book's table
    options = ", ".join(f"{r['scale']} {r['auroc']:.4f}" for r in rows)
    for kind in KINDS:
        word = BUDGET_VALIDATION[validation_column(kind)].word
        print(f"class {data.class_name}: validation by {kind} chooses {chosen[f'scale by {word}']} "
              f"(test AUROC {chosen[f'test by {word}']:.4f}; {options})", flush=True)
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
