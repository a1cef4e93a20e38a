"""Benchmark: how much of the pretrained network's features does each teacher carry?

    python benchmarks/teacher_capacity.py --images ~/.cache/ust/tinyimagenet190.npz \
        --sources pretraining ~/.cache/ust/cifar10.npz mnist --threads 1 --out book/results/teacher_capacity.csv

For each teacher (the shipped ones by default; ``--teachers`` also takes
checkpoint files of ``python -m ust pretrain-teacher``) and each source of
patches it measures, with :func:`ust.training.distillation_capacity`:

* ``explained``: the fraction of the variance of EfficientNet-Lite0's
  features (the network the teachers were distilled from) that the best
  affine decoder recovers from the teacher's 128 channels, fitted on one
  half of the patches and measured on the other;
* ``ceiling``: the most that any 128-dimensional descriptor could recover on
  those patches (:func:`ust.distillation_floor`).

A teacher far below its ceiling is limited by its training or its network,
not by ``d = 128``. Sources: ``pretraining`` (new random patches of the
photos given by ``--images``, the ones the teachers were pretrained on, drawn
as in pretraining), or a dataset (``mnist``, ``cifar10`` or an ``.npz``
path: patches of its training images of every class, grayscale as three
equal channels; images smaller than the patch are upscaled to it).
``--out`` keeps the rows of other teachers and sources already in the file
and replaces those it measures again. The results feed the chapter
*Results* ("Is the teacher the bottleneck?").
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from ust.backbones import load_backbone
from ust.cli import teacher_from_spec                   # a checkpoint path or pretrained:P[:variant], as in the CLI
from ust.data.patches import PatchSampler, load_natural_images
from ust.experiments import hardware_description, load_splits, write_rows
from ust.report import CAPACITY_COLUMNS, merge_capacity_rows, read_capacity
from ust.training import distillation_capacity


def patch_sampler(source: str, patch_size: int, images_path: str | None, data_root: str | None,
                  seed: int) -> PatchSampler:
    """New random patches of ``source`` (see the module docstring), with their own seed."""
    if source == "pretraining":
        if images_path is None:
            raise SystemExit("--sources pretraining needs --images, the teachers' pretraining photos "
                             "(e.g. ~/.cache/ust/tinyimagenet190.npz, see ust/weights/MODEL_CARD.md).")
        return PatchSampler(load_natural_images(images_path), patch_size, seed=seed)   # pretraining's upscaling
    images = load_natural_images(load_splits(source, data_root).train.images)   # (N, H, W, 3) uint8, gray as RGB
    return PatchSampler(images, patch_size, max_shift=0, seed=seed)


def source_name(source: str) -> str:
    """``cifar10`` for ``~/.cache/ust/cifar10.npz``; names stay as they are."""
    return os.path.splitext(os.path.basename(source))[0] if source.endswith(".npz") else source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teachers", nargs="+", default=["pretrained:17", "pretrained:33", "pretrained:65"],
                        help="pretrained:P[:variant] or checkpoint files")
    parser.add_argument("--sources", nargs="+", default=["pretraining"])
    parser.add_argument("--images", default=None, help="the pretraining photos, for --sources pretraining")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--patches", type=int, default=8192, help="patches in each half (fit, evaluate)")
    parser.add_argument("--seed", type=int, default=1, help="the patches' seed (pretraining drew with seed 0)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    backbone = load_backbone("efficientnet_lite0")
    rows = []
    for spec in args.teachers:
        teacher, info = teacher_from_spec(spec)
        iterations = info["metadata"].get("settings", {}).get("iterations")
        for source in args.sources:
            sampler = patch_sampler(source, teacher.patch_size, args.images, args.data_root, args.seed)
            start = time.perf_counter()
            result = distillation_capacity(teacher, backbone, sampler, n_patches=args.patches)
            row = dict(teacher=teacher.name, patch_size=teacher.patch_size, iterations=iterations,
                       source=source_name(source), n_patches=args.patches, **result,
                       seconds=round(time.perf_counter() - start, 1), hardware=hardware_description())
            rows.append(row)
            print(f"{teacher.name} ({iterations} iterations) on {row['source']}: explained {row['explained']:.3f} "
                  f"of the feature variance, ceiling {row['ceiling']:.3f} ({row['seconds']:.0f} s)", flush=True)
            if args.out:
                old = read_capacity(args.out).to_dict("records") if os.path.isfile(args.out) else []
                write_rows(args.out, merge_capacity_rows(old, rows), columns=CAPACITY_COLUMNS)


if __name__ == "__main__":
    main()
