"""Command-line options shared by the student benchmarks (``student_budget.py``, ``score_aggregation.py``)."""

from __future__ import annotations

import argparse

import torch

import ust
from ust.experiments import load_splits


def student_parser(doc: str, *, classes: list[str], out_help: str) -> argparse.ArgumentParser:
    """A parser with the fast protocol's student settings as defaults (``book/results/README.md``).

    Args:
        doc: The script's docstring, shown by ``--help``.
        classes: Default ``--classes``.
        out_help: What one row of the ``--out`` CSV is.
    """
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--classes", nargs="+", default=classes)
    parser.add_argument("--patch-size", type=int, default=33, choices=ust.PATCH_SIZES)
    parser.add_argument("--students", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--max-test", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=None, help=f"CSV with one row per {out_help}")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def start(args: argparse.Namespace):
    """Apply ``--threads`` and ``--seed``, and load the dataset's splits."""
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    return load_splits(args.dataset, args.data_root)
