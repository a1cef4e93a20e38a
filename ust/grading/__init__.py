"""Checks and a grader for the course assignments (MNIST and CIFAR-10 one-class novelty detection).

Introduced in the book's part *Assignments*.

In a notebook, after filling in the starter module::

    import importlib, a1_starter
    importlib.reload(a1_starter)          # pick up your latest edits
    ust.grading.check(a1_starter)         # prints a ✓/✗ report, never raises

From a shell: ``python -m ust.grading check a1_starter.py`` (public checks,
exit status 0 when all pass). For the instructor:
``python -m ust.grading grade SUBMISSIONS/ --assignment 1 --out scores.csv``
runs the public and the hidden checks on every submission, each in its own
process with a time limit (:mod:`ust.grading.grader`).

* :mod:`ust.grading.checks`: the public checks; reference values are
  computed with the :mod:`ust` implementations on fixed seeded inputs.
* :mod:`ust.grading.hidden`: more cases for grading.
* :mod:`ust.grading.loading`: a submission as a module, a notebook or a folder.
* :mod:`ust.grading.starter`: a starter module made from a solution module.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType
from typing import Any, Mapping

from ._framework import Check, CheckResult, Report, run_checks
from .checks import FUNCTIONS, public_checks
from .grader import grade_folder, grade_submission
from .hidden import all_checks, hidden_checks
from .starter import make_starter

__all__ = ["check", "run_checks_on", "infer_assignment", "FUNCTIONS", "Check", "CheckResult", "Report",
           "public_checks", "hidden_checks", "all_checks", "grade_folder", "grade_submission", "make_starter"]


def infer_assignment(namespace: Mapping[str, Any]) -> int:
    """1 or 2: the assignment whose functions the namespace defines more of (ties: 1)."""
    counts = {a: sum(callable(namespace.get(name)) for name in names) for a, names in FUNCTIONS.items()}
    return max(counts, key=lambda a: (counts[a], -a))


def run_checks_on(namespace: Mapping[str, Any], assignment: int, *, hidden: bool = False, source: str = "") -> Report:
    """Run the public (and with ``hidden``, the hidden) checks on the functions in ``namespace``."""
    checks = all_checks(assignment) if hidden else public_checks(assignment)
    return run_checks(namespace, checks, assignment, source)


def _namespace(target: Any, assignment: int | None) -> tuple[Mapping[str, Any], str]:
    if isinstance(target, ModuleType):
        return vars(target), getattr(target, "__name__", "")
    if isinstance(target, Mapping):
        return target, ""
    if isinstance(target, (str, os.PathLike)):
        from .loading import load_namespace

        namespace, _ = load_namespace(target, assignment)
        return namespace, Path(target).name
    if callable(target):
        return {target.__name__: target}, target.__name__
    raise TypeError(f"check() takes a module, a dict of functions, a function or a path; got {type(target).__name__}.")


def check(target: Any, assignment: int | None = None, *, hidden: bool = False, verbose: bool = True) -> Report:
    """Run the public checks on a student's functions and print a ✓/✗ report.

    Args:
        target: The starter module (``import a1_starter``), a dict of
            functions (e.g. ``globals()`` in a notebook), one function, or
            the path of a ``.py``/``.ipynb`` file.
        assignment: 1 or 2; by default, inferred from the functions defined.
            With a single function, only that function's checks run.
        hidden: Also run the hidden (grading) checks.
        verbose: Print the report.

    Returns:
        The :class:`Report` (``report.all_passed``, ``report.score``).
    """
    namespace, source = _namespace(target, assignment)
    single = callable(target) and not isinstance(target, (ModuleType, Mapping, str, os.PathLike))
    if assignment is None:
        assignment = infer_assignment(namespace)
    checks = all_checks(assignment) if hidden else public_checks(assignment)
    if single:
        checks = [c for c in checks if c.function in namespace]
        if not checks:
            known = ", ".join(n for names in FUNCTIONS.values() for n in names)
            raise ValueError(f"no checks for a function named {target.__name__!r}; checked functions: {known}.")
    report = run_checks(namespace, checks, assignment, source)
    if verbose:
        print(report)
    return report
