"""Make a student's starter module from a solution module.

A solution module marks each answer::

    def predictive_variance(predictions):
        \"\"\"...\"\"\"
        # TODO: the variance of the M predictions around their mean, summed over channels (Eq. 11).
        ### BEGIN SOLUTION
        mean = predictions.mean(0)
        return (predictions - mean).square().sum(2).mean(0)
        ### END SOLUTION

:func:`make_starter` replaces every block from ``### BEGIN SOLUTION`` to
``### END SOLUTION`` with ``raise NotImplementedError(...)`` at the same
indentation, and drops every line that contains ``### SOLUTION ONLY``.
Everything else (docstrings, TODO comments, the helpers the students are
given) stays, so the starter and the solution cannot drift apart: the tests
check that the starter in the book is exactly ``make_starter(solution)``.
"""

from __future__ import annotations

import re

__all__ = ["make_starter", "BEGIN", "END", "ONLY"]

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
ONLY = "### SOLUTION ONLY"
_DEF = re.compile(r"^\s*def\s+([A-Za-z_]\w*)\s*\(")


def make_starter(solution: str) -> str:
    """The starter text for a solution text (see the module docstring).

    Raises:
        ValueError: Unbalanced or nested markers.
    """
    out: list[str] = []
    inside = False
    function = None
    for number, line in enumerate(solution.splitlines(keepends=True), start=1):
        match = _DEF.match(line)
        if match and not inside:
            function = match.group(1)
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise ValueError(f"line {number}: {BEGIN} inside another solution block.")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            what = f"{function}: " if function else ""
            out.append(f'{indent}raise NotImplementedError("{what}fill in this TODO block")\n')
            continue
        if stripped == END:
            if not inside:
                raise ValueError(f"line {number}: {END} without {BEGIN}.")
            inside = False
            continue
        if inside or ONLY in line:
            continue
        out.append(line)
    if inside:
        raise ValueError(f"{BEGIN} without {END} at the end of the file.")
    return "".join(out)
