"""Grade a folder of submissions: each in its own process, with a time limit, into one CSV.

``python -m ust.grading grade SUBMISSIONS --assignment 1 --out scores.csv``
finds the submissions (every ``.py`` and ``.ipynb`` file and every folder
directly inside ``SUBMISSIONS``; see :mod:`ust.grading.loading`), runs the
public and hidden checks on each in a fresh Python process
(:mod:`ust.grading._worker`) with one CPU thread and a wall-clock limit,
and writes one CSV row per submission. A submission that fails to import,
crashes the interpreter or runs past the limit gets score 0 and the reason;
the run always goes on to the next one.

The student's code runs with the grader's user rights: grade untrusted
submissions inside a container or a throw-away account.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ._framework import Report

__all__ = ["CSV_COLUMNS", "GradeRow", "find_submissions", "grade_submission", "grade_folder", "write_csv"]

#: Columns of the scores CSV.
CSV_COLUMNS = ("submission", "status", "score", "max_score", "percent", "passed", "checks", "seconds", "messages")

_SKIP = {"__pycache__", ".ipynb_checkpoints"}


@dataclass
class GradeRow:
    """One submission's grade (one CSV row)."""

    submission: str
    status: str           # "graded", "error", "timeout"
    score: float
    max_score: float
    passed: int
    checks: int
    seconds: float
    messages: str
    report: Report | None = None

    @property
    def percent(self) -> float:
        return round(100.0 * self.score / self.max_score, 1) if self.max_score else 0.0

    def as_csv(self) -> dict:
        return {"submission": self.submission, "status": self.status, "score": f"{self.score:g}",
                "max_score": f"{self.max_score:g}", "percent": f"{self.percent:g}", "passed": self.passed,
                "checks": self.checks, "seconds": f"{self.seconds:.1f}", "messages": self.messages}


def find_submissions(folder: str | Path) -> list[Path]:
    """The submissions in ``folder``: ``.py`` and ``.ipynb`` files and sub-folders, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder of submissions.")
    found = [p for p in folder.iterdir()
             if not p.name.startswith(".") and p.name not in _SKIP
             and (p.is_dir() or p.suffix in (".py", ".ipynb"))]
    return sorted(found, key=lambda p: p.name)


def _max_score(assignment: int, hidden: bool) -> tuple[float, int]:
    from .hidden import all_checks
    from .checks import public_checks

    checks = all_checks(assignment) if hidden else public_checks(assignment)
    return sum(c.points for c in checks), len(checks)


def _summary(report: Report, limit: int = 1500) -> str:
    """The failed checks in one line; checks of one function that fail with one message are merged."""
    groups: dict[tuple[str, str], list[str]] = {}
    for r in report.failures():
        groups.setdefault((r.function, r.message.splitlines()[0] if r.message else r.status), []).append(r.name)
    parts = [f"{function}: {names[0] if len(names) == 1 else f'{len(names)} checks'}: {message}"
             for (function, message), names in groups.items()]
    text = " | ".join(parts)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _kill(process: subprocess.Popen) -> None:
    try:
        if hasattr(os, "killpg"):
            os.killpg(process.pid, signal.SIGKILL)
        else:  # pragma: no cover  (Windows)
            process.kill()
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()


def grade_submission(path: str | Path, assignment: int, *, timeout: float = 60.0, hidden: bool = True,
                     startup_timeout: float = 300.0) -> GradeRow:
    """Grade one submission in a separate process; never raises for the submission's faults.

    Args:
        path: A ``.py`` or ``.ipynb`` file, or a student's folder.
        assignment: 1 or 2.
        timeout: Seconds for loading the submission and running the checks;
            the clock starts once the worker has imported torch and ust (that
            start-up, several seconds on a busy machine, is not the student's).
        hidden: Run the hidden checks too.
        startup_timeout: Seconds allowed for that start-up.
    """
    path = Path(path)
    max_score, n_checks = _max_score(assignment, hidden)
    start = time.perf_counter()

    def failed(status: str, reason: str) -> GradeRow:
        return GradeRow(path.name, status, 0.0, max_score, 0, n_checks, time.perf_counter() - start, reason)

    with tempfile.TemporaryDirectory(prefix="ust-grade-") as tmp:
        out = Path(tmp) / "report.json"
        ready = Path(tmp) / "ready"
        command = [sys.executable, "-m", "ust.grading._worker", "--assignment", str(assignment),
                   "--out", str(out), "--ready", str(ready), str(path.resolve())]
        command += [] if hidden else ["--public-only"]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "UST_THREADS": "1",
               "MPLBACKEND": "Agg", "PYTHONDONTWRITEBYTECODE": "1"}
        cwd = path.parent.resolve() if path.is_file() else path.resolve()
        log = Path(tmp) / "output.txt"
        with open(log, "w", encoding="utf-8", errors="replace") as output:
            process = subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=output,
                                       stderr=subprocess.STDOUT, start_new_session=hasattr(os, "setsid"))
            status = _wait(process, ready, timeout, startup_timeout)
        if status == "timeout":
            return failed("timeout", f"timed out after {timeout:g} s (an endless loop, or far too slow): score 0.")
        if status == "startup":
            return failed("error", f"the grading process did not start within {startup_timeout:g} s (machine "
                                   "overloaded?); grade this submission again.")
        if out.is_file():
            data = json.loads(out.read_text(encoding="utf-8"))
            if data.get("error"):
                return failed("error", data["error"])
            report = Report.from_dict(data["report"])
            notes = "; ".join(data.get("notes", []))
            messages = _summary(report) + (f" | notes: {notes}" if notes else "")
            return GradeRow(path.name, "graded", report.score, report.max_score, report.n_passed,
                            len(report.results), time.perf_counter() - start, messages.strip(" |"), report)
        lines = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        tail = " ".join(lines[-3:])[-600:]
        return failed("error", f"the grading process ended with exit code {process.returncode} without a report"
                               + (f": {tail}" if tail else "."))


def _wait(process: subprocess.Popen, ready: Path, timeout: float, startup_timeout: float) -> str:
    """Wait for the worker: ``startup_timeout`` for Python, torch and ust to load, then ``timeout`` for the submission.

    Returns ``"done"``, ``"timeout"`` (killed: the submission ran too long) or
    ``"startup"`` (killed: the worker never got ready).
    """
    started = time.monotonic()
    ready_at = None
    while process.poll() is None:
        now = time.monotonic()
        if ready_at is None and ready.exists():
            ready_at = now
        if ready_at is None and now - started > startup_timeout:
            _kill(process)
            return "startup"
        if ready_at is not None and now - ready_at > timeout:
            _kill(process)
            return "timeout"
        time.sleep(0.02)
    return "done"


def write_csv(rows: list[GradeRow], path: str | Path) -> Path:
    """Write the rows to ``path`` (folders are created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow(row.as_csv())
    return path


def grade_folder(folder: str | Path, assignment: int, out: str | Path, *, timeout: float = 60.0,
                 hidden: bool = True, progress: bool = True, startup_timeout: float = 300.0) -> list[GradeRow]:
    """Grade every submission in ``folder`` and write the CSV to ``out``.

    Returns:
        The rows, in the order of the CSV.
    """
    submissions = find_submissions(folder)
    rows = []
    for i, path in enumerate(submissions, start=1):
        row = grade_submission(path, assignment, timeout=timeout, hidden=hidden, startup_timeout=startup_timeout)
        rows.append(row)
        if progress:
            print(f"[{i}/{len(submissions)}] {row.submission}: {row.status}, {row.score:g}/{row.max_score:g} "
                  f"({row.seconds:.1f} s)", flush=True)
        write_csv(rows, out)  # after every submission, so an interrupted run keeps what it graded
    if not submissions:
        write_csv(rows, out)
    return rows
