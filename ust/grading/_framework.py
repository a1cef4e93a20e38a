"""The machinery behind the checks: a check, its result, a report, and comparisons with hints.

A :class:`Check` runs one student function on fixed, seeded inputs and
compares what comes back with the reference (the :mod:`ust` implementation
of the same equation), in this order: type, shape, dtype, values. When the
values differ, the comparison tries the *known mistakes* of that function
(each an alternative value computed from the same inputs, e.g. the loss
summed instead of averaged) and reports the matching hint instead of a bare
"values differ".
"""

from __future__ import annotations

import math
import textwrap
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch

__all__ = ["CheckFailed", "Check", "CheckResult", "Report", "run_checks", "call", "expect_tensor",
           "expect_number", "expect_raises"]


#: Report lines are wrapped at this width (it fits the book's output cells).
WIDTH = 78


class CheckFailed(AssertionError):
    """A check's verdict: the message says what is wrong and, where known, how to fix it."""


@dataclass(frozen=True)
class Check:
    """One check of one function.

    Attributes:
        name: What is checked, e.g. ``"values on a (2, 5, 3, 4) batch"``.
        function: Name of the function under test (looked up in the submission).
        run: Called with the student's function; raises :class:`CheckFailed`.
        points: Points for passing.
        hidden: Run only when grading (not by :func:`ust.grading.check`).
    """

    name: str
    function: str
    run: Callable[[Callable], None]
    points: float = 1.0
    hidden: bool = False


@dataclass
class CheckResult:
    """What one check found.

    ``status`` is ``"passed"``, ``"failed"`` (wrong result), ``"not
    implemented"`` (the stub still raises :class:`NotImplementedError`),
    ``"missing"`` (no such function) or ``"error"`` (another exception).
    """

    function: str
    name: str
    status: str
    message: str = ""
    points: float = 1.0
    hidden: bool = False
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def score(self) -> float:
        return self.points if self.passed else 0.0


@dataclass
class Report:
    """Results of all checks run on one submission; prints as a ✓/✗ list."""

    assignment: int
    results: list[CheckResult] = field(default_factory=list)
    source: str = ""

    @property
    def score(self) -> float:
        return sum(r.score for r in self.results)

    @property
    def max_score(self) -> float:
        return sum(r.points for r in self.results)

    @property
    def n_passed(self) -> int:
        return sum(r.passed for r in self.results)

    @property
    def all_passed(self) -> bool:
        return bool(self.results) and all(r.passed for r in self.results)

    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if not r.passed]

    def to_dict(self) -> dict:
        return {"assignment": self.assignment, "source": self.source, "score": self.score,
                "max_score": self.max_score, "results": [asdict(r) for r in self.results]}

    @classmethod
    def from_dict(cls, data: Mapping) -> "Report":
        return cls(int(data["assignment"]), [CheckResult(**r) for r in data["results"]], data.get("source", ""))

    def __str__(self) -> str:
        lines = [f"Assignment {self.assignment} checks" + (f" for {self.source}" if self.source else "") + ":"]
        current = None
        for r in self.results:
            if r.function != current:
                current = r.function
                lines.append(f"{r.function}")
            mark = "✓" if r.passed else "✗"
            lines.append(f"  {mark} {r.name}")
            if not r.passed:
                for i, part in enumerate(r.message.splitlines() or [r.status]):
                    lines.extend(textwrap.wrap(part, width=WIDTH, initial_indent="      → " if i == 0 else "        ",
                                               subsequent_indent="        ", break_on_hyphens=False))
        lines.append(f"{self.n_passed}/{len(self.results)} checks passed"
                     + ("." if not self.all_passed else ": all good."))
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_pretty_(self, printer, cycle) -> None:  # IPython shows the readable form
        printer.text(str(self))


def run_checks(namespace: Mapping[str, Any], checks: Iterable[Check], assignment: int, source: str = "") -> Report:
    """Run ``checks`` against the functions in ``namespace``; never raises for a student's mistake."""
    report = Report(assignment, source=source)
    for check in checks:
        fn = namespace.get(check.function)
        start = time.perf_counter()
        if fn is None or not callable(fn):
            status = "missing"
            message = (f"no function {check.function}() found: define it with exactly this name "
                       "(it is in the starter module).")
        else:
            try:
                check.run(fn)
            except CheckFailed as failure:
                status, message = "failed", str(failure)
            except NotImplementedError:
                status, message = "not implemented", (f"{check.function}() still raises NotImplementedError: "
                                                      "fill in its TODO block.")
            except (Exception, SystemExit) as err:  # noqa: BLE001  (a student's function may raise anything)
                status, message = "error", _explain_exception(err)
            else:
                status, message = "passed", ""
        report.results.append(CheckResult(check.function, check.name, status, message, check.points, check.hidden,
                                          round(time.perf_counter() - start, 4)))
    return report


def _explain_exception(err: Exception) -> str:
    text = f"raised {type(err).__name__}: {str(err).strip()}"
    low = str(err).lower()
    if "must match the size of tensor" in low or "broadcast" in low:
        text += ("\nHint: a per-channel vector of shape (d,) broadcasts against the last axis; reshape it to "
                 "(1, d, 1, 1) (e.g. mean[None, :, None, None]) to act on the channel axis of (B, d, H, W).")
    elif "can't call numpy()" in low or "requires grad" in low:
        text += "\nHint: stay in torch (no .numpy(), no .item()) so that gradients can flow."
    return text


# --------------------------------------------------------------------------- calling and comparing

def call(fn: Callable, *args, **kwargs):
    """Call ``fn`` on copies of tensor arguments and fail if it changed them in place."""
    copies = [a.detach().clone() if isinstance(a, torch.Tensor) else a for a in args]
    result = fn(*args, **kwargs)
    for i, (a, c) in enumerate(zip(args, copies)):
        if isinstance(a, torch.Tensor) and (a.shape != c.shape or not torch.equal(a.detach(), c)):
            raise CheckFailed(f"the function changed its argument {i + 1} in place; compute a new tensor "
                              "instead (e.g. x = x - mean, not x -= mean).")
    return result


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float, atol: float) -> bool:
    if a.shape != b.shape:
        return False
    a64, b64 = a.detach().to(torch.float64), b.detach().to(torch.float64)
    if not torch.isfinite(a64).all():
        return bool(torch.equal(torch.isnan(a64), torch.isnan(b64)) and
                    torch.allclose(torch.nan_to_num(a64), torch.nan_to_num(b64), rtol=rtol, atol=atol))
    scale = float(b64.abs().max()) if b64.numel() else 0.0
    return bool(torch.allclose(a64, b64, rtol=rtol, atol=atol * max(1.0, scale)))


def _tolerances(dtype: torch.dtype) -> tuple[float, float]:
    return (1e-9, 1e-10) if dtype == torch.float64 else (1e-4, 1e-5)


def expect_tensor(actual: Any, expected: torch.Tensor, *, what: str,
                  alternatives: Sequence[tuple[torch.Tensor, str]] = (),
                  shape_hint: str = "", check_dtype: bool = True) -> None:
    """Fail unless ``actual`` is a tensor equal to ``expected`` in shape, dtype and values.

    Args:
        actual: The student's result.
        expected: The reference result.
        what: How the result is called in messages (``"the loss"``).
        alternatives: ``(value, hint)`` pairs for known mistakes: when the
            values are wrong and match ``value``, the message is ``hint``.
        shape_hint: Added to the message when the shape is wrong.
        check_dtype: Require ``expected.dtype``.
    """
    if not isinstance(actual, torch.Tensor):
        raise CheckFailed(f"{what} should be a torch.Tensor; got {type(actual).__name__}.")
    if actual.shape != expected.shape:
        for value, hint in alternatives:
            if value.shape == actual.shape and _close(actual, value, *_tolerances(expected.dtype)):
                raise CheckFailed(f"{what} has shape {tuple(actual.shape)}, expected {tuple(expected.shape)}: {hint}")
        raise CheckFailed(f"{what} has shape {tuple(actual.shape)}, expected {tuple(expected.shape)}."
                          + (f" {shape_hint}" if shape_hint else ""))
    if check_dtype and actual.dtype != expected.dtype:
        raise CheckFailed(f"{what} has dtype {actual.dtype}, expected {expected.dtype}: keep the inputs' dtype "
                          "(no .float() or .double(), no new tensors without dtype=...).")
    rtol, atol = _tolerances(expected.dtype)
    if _close(actual, expected, rtol, atol):
        return
    if not torch.isfinite(actual.detach()).all() and torch.isfinite(expected).all():
        raise CheckFailed(f"{what} contains inf or nan where the reference is finite.")
    for value, hint in alternatives:
        if _close(actual, value, rtol, atol):
            raise CheckFailed(hint)
    diff = (actual.detach().to(torch.float64) - expected.to(torch.float64)).abs()
    flat = int(diff.argmax())
    index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), expected.shape)) if expected.dim() else ()
    got, want = actual.detach().reshape(-1)[flat].item(), expected.reshape(-1)[flat].item()
    where = f" at index {index}" if index else ""
    raise CheckFailed(f"{what} has wrong values: largest difference {diff.max().item():.4g}{where} "
                      f"(got {got:.6g}, expected {want:.6g}).")


def expect_number(actual: Any, expected: float, *, what: str,
                  alternatives: Sequence[tuple[float, str]] = (), rtol: float = 1e-5, atol: float = 1e-7) -> float:
    """Fail unless ``actual`` is a real number (or 0-dim tensor) close to ``expected``; return it as float."""
    if isinstance(actual, torch.Tensor):
        if actual.numel() != 1:
            raise CheckFailed(f"{what} should be one number; got a tensor of shape {tuple(actual.shape)}.")
        actual = actual.item()
    try:
        value = float(actual)
    except (TypeError, ValueError):
        raise CheckFailed(f"{what} should be a number; got {type(actual).__name__}.") from None
    if math.isclose(value, expected, rel_tol=rtol, abs_tol=atol):
        return value
    for alt, hint in alternatives:
        if math.isclose(value, alt, rel_tol=rtol, abs_tol=atol):
            raise CheckFailed(hint)
    raise CheckFailed(f"{what} is {value:.6g}, expected {expected:.6g}.")


def expect_raises(fn: Callable, exc: type[BaseException], *args, what: str, **kwargs) -> None:
    """Fail unless ``fn(*args, **kwargs)`` raises ``exc``."""
    try:
        fn(*args, **kwargs)
    except exc:
        return
    except NotImplementedError:
        raise
    except Exception as err:  # noqa: BLE001
        raise CheckFailed(f"{what}: expected {exc.__name__}, got {type(err).__name__}: {err}") from None
    raise CheckFailed(f"{what}: expected {exc.__name__}, but nothing was raised.")
