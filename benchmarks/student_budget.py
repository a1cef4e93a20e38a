"""Benchmark: how long must the students train? AUROC against training time.

    python benchmarks/student_budget.py --dataset mnist --classes 8 1 --threads 1 \
        --out book/results/student_budget.csv

One training run per class (the fast protocol's settings by default: shipped
``p = 33`` teacher, ``M = 3``, batches of 8, Adam at a constant 1e-3; ``--teacher``
takes another, e.g. a checkpoint of ``python -m ust pretrain-teacher``, named in the
``teacher`` column; ``--lr-schedule cosine`` decays the rate to 0 at the one
checkpoint it then accepts). At each checkpoint
the run pauses, and on the *same* students it measures

* ``val_auroc``: :func:`ust.experiments.synthetic_validation_auroc`, normal
  validation images against the same images with a synthetic stroke. This
  uses training-class data only, so it is what a user may choose the
  number of iterations with;
* ``val_auroc_rotate``: the same with the images turned by a quarter turn
  (``kind="rotate"``), a global change of shape instead of a local defect;
* ``val_auroc_splice`` and ``val_auroc_swap``: two harder global anomalies,
  each image joined to another normal image at a random cut
  (``kind="splice"``), or its halves exchanged (``kind="swap"``); see
  :func:`ust.data.global_anomalies`. ``--validation`` chooses which of the
  four are measured (all by default; each costs about a quarter of a
  pause), the others stay empty;
* ``auroc`` (and ``auroc_error``, ``auroc_variance``): the one-class test
  AUROC on the benchmark's fixed stratified test subset (with
  ``--seed 0``, the images ``python -m ust benchmark --max-test`` scores), after
  calibrating on all validation images, exactly as ``python -m ust
  benchmark`` scores. It is reported, never used to choose;
* ``train_seconds``: training time so far, the pauses excluded (with
  ``threads`` CPU threads);
* ``hardware``: :func:`ust.experiments.hardware_description`, the CPU and
  its vector instructions (they decide the last digits of every AUROC).

``--image-size S`` trains and scores on images resized to ``S x S`` (the
``image_size`` column; the dataset's own size by default). The synthetic
strokes are then drawn on the validation images at their own size and
resized with them (``synthetic_validation_auroc(..., image_size=S)``):
drawn after an upscaling, a sharp stroke on blurred content is easier to
see and the validation score rises with the image size whatever the
students learned (chapter *Results*, "Does a larger image help?").

``--out`` keeps the rows of other runs already in the file (other classes,
datasets or settings) and replaces those of the runs made now, so one
file collects several invocations. The file has no seed column: it holds
runs with ``--seed 0`` only, and refuses another seed.

At the end it prints, per class, the iteration that the validation score
chooses (the first checkpoint within ``--tolerance`` of the best validation
AUROC) and how far its test AUROC lies from that of the longest run. The
results feed the discussion of training length in the chapter *Results*.
"""

from __future__ import annotations

import os
import time

import torch

import ust
from ust.data import GLOBAL_KINDS, one_class_split, resize_images
from ust.experiments import (VALIDATION_KINDS, checkpoint_aurocs, hardware_description, parse_classes,
                             validation_column, write_rows)
from ust.cli import teacher_from_spec                   # a checkpoint path or pretrained:P[:variant], as in the CLI
from ust.report import BUDGET_COLUMNS, choose_by_validation, merge_budget_runs, read_budget
from ust.training import LR_SCHEDULES, train_students

from _common import start, student_parser  # benchmarks/_common.py: the options both student benchmarks share

#: Every validation anomaly the budget CSV has a column for (ust.report.BUDGET_VALIDATION).
KINDS = ("stroke",) + GLOBAL_KINDS


def budget_curve(splits, label: int, *, teacher: ust.PatchNet, checkpoints: list[int], n_students: int,
                 batch_size: int, lr: float, max_test: int, seed: int, progress: bool, image_size: int | None = None,
                 kinds: tuple[str, ...] = VALIDATION_KINDS, lr_schedule: str = "constant") -> list[dict]:
    """Train once and evaluate at every checkpoint; see the module docstring."""
    data = one_class_split(splits, label, channels=teacher.in_channels, max_test=max_test, seed=seed)
    # resized here for training only: checkpoint_aurocs takes the native-size images, so that the synthetic
    # validation draws its defects before the resize (see the module docstring)
    train = data.train if image_size is None else resize_images(data.train, image_size)
    size = f"{data.test.shape[-2]}x{data.test.shape[-1]}" if image_size is None else f"{image_size}x{image_size}"
    rows: list[dict] = []
    paused = 0.0
    start = time.perf_counter()
    wanted = set(checkpoints)

    def evaluate(step: int, model) -> None:
        nonlocal paused
        if step not in wanted:
            return
        pause = time.perf_counter()
        trained = pause - start - paused
        row = dict(dataset=splits.name, normal_class=label, patch_size=teacher.patch_size, teacher=teacher.name,
                   n_students=n_students,
                   batch_size=batch_size, lr=lr, lr_schedule=lr_schedule, threads=torch.get_num_threads(),
                   image_size=size, iteration=step,
                   train_seconds=round(trained, 1),
                   **checkpoint_aurocs(model, data, seed=seed, image_size=image_size, kinds=kinds),
                   n_test=len(data.test), hardware=hardware_description())
        rows.append(row)
        validation = "  ".join(f"{kind} {row[validation_column(kind)]:.4f}" for kind in kinds)
        print(f"class {label} step {step:5d}  {trained:7.1f} s  validation: {validation}  test {row['auroc']:.4f} "
              f"(error {row['auroc_error']:.4f}, variance {row['auroc_variance']:.4f})", flush=True)
        paused += time.perf_counter() - pause

    every = min(checkpoints)
    for c in checkpoints:
        if c % every:
            raise SystemExit(f"every checkpoint must be a multiple of the smallest ({every}); got {c}.")
    train_students(teacher, train, n_students=n_students, iterations=max(checkpoints), batch_size=batch_size,
                   lr=lr, lr_schedule=lr_schedule, seed=seed, progress=progress, callback=evaluate,
                   callback_every=every)
    return rows


def main() -> None:
    parser = student_parser(__doc__, classes=["8"], out_help="class and checkpoint")
    parser.set_defaults(patch_size=None)                # 33, unless --teacher sets it
    parser.add_argument("--checkpoints", type=int, nargs="+", default=[50, 100, 200, 400, 800, 1600])
    parser.add_argument("--image-size", type=int, default=None,
                        help="resize the images to SxS (default: keep their size, 28x28 for MNIST)")
    parser.add_argument("--lr-schedule", default="constant", choices=LR_SCHEDULES,
                        help="constant (the paper's) or cosine: decay to 0 at the (single) checkpoint")
    parser.add_argument("--tolerance", type=float, default=0.005)
    parser.add_argument("--teacher", default=None, metavar="PATH",
                        help="a teacher checkpoint (python -m ust pretrain-teacher), or pretrained:P[:variant] "
                             "(default: the shipped teacher of --patch-size)")
    parser.add_argument("--validation", nargs="+", default=list(KINDS), choices=KINDS,
                        help="synthetic anomalies to validate with (strokes choose the printed checkpoint)")
    args = parser.parse_args()
    if args.out and args.seed != 0:
        raise SystemExit(f"--out: the budget CSV has no seed column and holds seed 0 only; got --seed {args.seed}. "
                         "Run other seeds without --out.")
    if args.lr_schedule == "cosine" and len(set(args.checkpoints)) > 1:
        raise SystemExit("--lr-schedule cosine decays the rate to 0 at the last checkpoint, so an earlier pause is "
                         "not a run of that length; give one --checkpoints value per invocation.")
    if "stroke" not in args.validation:
        raise SystemExit("--validation must include 'stroke': the printed choice of the checkpoint uses it.")
    teacher, _ = teacher_from_spec(args.teacher or f"pretrained:{args.patch_size or 33}")
    if args.patch_size is not None and teacher.patch_size != args.patch_size:
        raise SystemExit(f"--teacher {args.teacher} has p = {teacher.patch_size}, not --patch-size {args.patch_size}; "
                         "drop --patch-size (the teacher sets it).")
    splits = start(args)
    checkpoints = sorted(set(args.checkpoints))
    rows: list[dict] = []
    for label in parse_classes(args.classes, splits.classes):       # "8 1", "0-9", "airplane", "all"
        curve = budget_curve(splits, label, teacher=teacher, checkpoints=checkpoints,
                             n_students=args.students, batch_size=args.batch_size, lr=args.lr,
                             max_test=args.max_test, seed=args.seed, progress=not args.no_progress,
                             image_size=args.image_size, kinds=tuple(args.validation),
                             lr_schedule=args.lr_schedule)
        rows.extend(curve)
        if args.out:
            old = read_budget(args.out).to_dict("records") if os.path.isfile(args.out) else []
            write_rows(args.out, merge_budget_runs(old, rows), columns=BUDGET_COLUMNS)
        pick, longest = choose_by_validation(curve, args.tolerance), curve[-1]
        print(f"class {label}: validation chooses {pick['iteration']} steps ({pick['train_seconds']:.0f} s), "
              f"test AUROC {pick['auroc']:.4f}; the longest run ({longest['iteration']} steps, "
              f"{longest['train_seconds']:.0f} s) {longest['auroc']:.4f}; "
              f"difference {pick['auroc'] - longest['auroc']:+.4f}", flush=True)


if __name__ == "__main__":
    main()
