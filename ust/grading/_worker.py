"""Grade one submission and write the report as JSON (run by the grader in a separate process).

``python -m ust.grading._worker --assignment 1 --out report.json [--ready FILE] SUBMISSION [--public-only]``

Writes ``{"report": ..., "notes": [...]}``, or ``{"error": "..."}`` when
the submission cannot be loaded. The submission's own prints go to this
process's stdout, which the grader discards.
"""

from __future__ import annotations

import argparse
import json
import traceback
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("submission")
    parser.add_argument("--assignment", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--public-only", action="store_true")
    parser.add_argument("--ready", help="file to create once torch and ust are imported (starts the grader's clock)")
    args = parser.parse_args(argv)
    out = Path(args.out)

    import torch

    torch.set_num_threads(1)
    from . import run_checks_on
    from .loading import load_namespace

    if args.ready:
        Path(args.ready).touch()

    try:
        namespace, notes = load_namespace(args.submission, args.assignment)
    except BaseException as err:  # noqa: BLE001  (SystemExit, syntax errors, failing imports ...)
        frames = traceback.extract_tb(err.__traceback__)
        where = next((f"{Path(f.filename).name}, line {f.lineno}" for f in reversed(frames)
                      if "ust/grading" not in f.filename.replace("\\", "/")), "")
        message = f"the submission could not be loaded: {type(err).__name__}: {err}" + (f" ({where})" if where else "")
        out.write_text(json.dumps({"error": message}), encoding="utf-8")
        return 0
    report = run_checks_on(namespace, args.assignment, hidden=not args.public_only, source=Path(args.submission).name)
    out.write_text(json.dumps({"report": report.to_dict(), "notes": notes}), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
