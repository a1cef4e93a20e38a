"""``python -m ust.grading``: check a submission, grade a folder, make a starter.

Examples::

    python -m ust.grading check a1_starter.py                 # public checks, exit 0 when all pass
    python -m ust.grading check my_notebook.ipynb --assignment 2 --hidden
    python -m ust.grading grade submissions/ --assignment 1 --out scores.csv --timeout 60
    python -m ust.grading make-starter assignments/solutions/a1_solution.py -o book/assignments/a1_starter.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..cli import _positive_float


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ust.grading", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("check", help="run the public checks on one module or notebook (in this process)")
    p.add_argument("submission", help="a .py module, a .ipynb notebook or a folder")
    p.add_argument("--assignment", type=int, choices=(1, 2), help="default: inferred from the functions defined")
    p.add_argument("--hidden", action="store_true", help="also run the hidden (grading) checks")

    p = sub.add_parser("grade", help="grade every submission in a folder into a CSV")
    p.add_argument("folder", help="folder of submissions: .py, .ipynb files, or one folder per student")
    p.add_argument("--assignment", type=int, choices=(1, 2), required=True)
    p.add_argument("--out", default="scores.csv", help="CSV file to write (default: %(default)s)")
    p.add_argument("--timeout", type=_positive_float, default=60.0,
                   help="seconds per submission before it gets 0 (default: %(default)s)")
    p.add_argument("--public-only", action="store_true", help="run only the public checks")

    p = sub.add_parser("make-starter", help="write the starter module for a solution module")
    p.add_argument("solution")
    p.add_argument("-o", "--out", help="output file (default: print)")

    args = parser.parse_args(argv)
    if args.command == "check":
        import torch

        from . import check

        torch.set_num_threads(1)
        try:
            report = check(args.submission, args.assignment, hidden=args.hidden)
        except Exception as err:  # noqa: BLE001  (the student's file failed to load)
            print(f"cannot check {args.submission}: {type(err).__name__}: {err}", file=sys.stderr)
            return 2
        return 0 if report.all_passed else 1
    if args.command == "grade":
        from .grader import grade_folder

        try:
            rows = grade_folder(args.folder, args.assignment, args.out, timeout=args.timeout,
                                hidden=not args.public_only)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        print(f"Graded {len(rows)} submission(s); wrote {args.out}.")
        return 0
    from .starter import make_starter

    text = make_starter(Path(args.solution).read_text(encoding="utf-8"))
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
