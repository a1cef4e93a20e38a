"""Load a submission's functions: a module (.py), a notebook (.ipynb) or a folder holding them.

* A ``.py`` file is imported as a module (its folder first on ``sys.path``,
  so that it can import its neighbours).
* From a ``.ipynb`` file only the *definitions* of its code cells run:
  imports, ``def``, ``class`` and assignments of literal constants
  (``EPS = 1e-6``). Training loops, plots and other statements are dropped,
  and so are IPython magics (``%...``, ``!...``); a cell that does not parse
  is skipped and reported. A notebook that does ``from a1_starter import *``
  gets the ``a1_starter.py`` that sits next to it.
* A folder is one student's submission: its starter module
  (``a1_starter.py`` / ``a2_starter.py``) if present, else its only
  notebook, else its only ``.py`` file.

A graded function that calls the ``ust`` object computing its own answer
(``ust.regression_error`` inside ``regression_error``, see
:data:`REFERENCE_NAMES`) is replaced by one that raises and says so: the
checks compare with those objects, so calling them earns no credit.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import sys
import types
from pathlib import Path

__all__ = ["STARTER_NAMES", "REFERENCE_NAMES", "ReferenceCallRefused", "resolve_submission", "notebook_definitions",
           "reference_calls", "load_namespace"]

#: The starter module of each assignment (also the module a notebook imports).
STARTER_NAMES = {1: "a1_starter", 2: "a2_starter"}

#: Besides the ``ust`` object of the same name, the ``ust`` objects that compute a graded function's answer.
REFERENCE_NAMES = {"channel_statistics": {"teacher_statistics"}, "auroc": {"image_auroc"},
                   "fuse_scales": {"MultiScaleStudentTeacher"}, "ablation_scores": {"component_scores"}}

_KEPT = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def resolve_submission(path: str | Path, assignment: int | None = None) -> Path:
    """The file to load for a submission path (a file, or a folder with one student's files).

    Raises:
        ValueError: A folder with nothing to grade, or with several candidates.
    """
    path = Path(path)
    if path.is_file():
        if path.suffix not in (".py", ".ipynb"):
            raise ValueError(f"{path.name}: submit a .py module or a .ipynb notebook, not a {path.suffix or 'file'}.")
        return path
    if not path.is_dir():
        raise ValueError(f"{path} does not exist.")
    names = [STARTER_NAMES[assignment]] if assignment in STARTER_NAMES else list(STARTER_NAMES.values())
    for name in names:
        if (path / f"{name}.py").is_file():
            return path / f"{name}.py"
    for pattern in ("*.ipynb", "*.py"):
        found = sorted(p for p in path.glob(pattern) if not p.name.startswith("."))
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise ValueError(f"{path.name}/ holds several {pattern[1:]} files ({', '.join(p.name for p in found)}) "
                             f"and no {names[0]}.py: submit one module or one notebook.")
    raise ValueError(f"{path.name}/ holds no .py module and no .ipynb notebook.")


def _strip_magics(source: str) -> str:
    lines = []
    for line in source.splitlines():
        stripped = line.lstrip()
        lines.append("" if stripped.startswith(("%", "!")) else line)
    return "\n".join(lines)


def _is_literal_assignment(node: ast.stmt) -> bool:
    if isinstance(node, ast.Assign):
        value, targets = node.value, node.targets
    elif isinstance(node, ast.AnnAssign) and node.value is not None:
        value, targets = node.value, [node.target]
    else:
        return False
    if not all(isinstance(t, ast.Name) for t in targets):
        return False
    try:
        ast.literal_eval(value)
    except (ValueError, TypeError, SyntaxError, RecursionError):
        return False
    return True


def notebook_definitions(path: str | Path) -> tuple[str, list[str]]:
    """The definitions of a notebook's code cells as one module source, and notes on skipped cells.

    Raises:
        ValueError: A file that is not a readable notebook.
    """
    try:
        notebook = json.loads(Path(path).read_text(encoding="utf-8"))
        cells = notebook["cells"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{Path(path).name} is not a readable Jupyter notebook ({err}).") from None
    parts, notes = [], []
    for number, cell in enumerate(cells, start=1):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        try:
            tree = ast.parse(_strip_magics(source))
        except SyntaxError as err:
            notes.append(f"code cell {number} does not parse ({err.msg}, line {err.lineno}) and was skipped")
            continue
        kept = [node for node in tree.body if isinstance(node, _KEPT) or _is_literal_assignment(node)]
        if kept:
            parts.append(f"# --- code cell {number}\n" + "\n".join(ast.unparse(node) for node in kept))
    return "\n\n".join(parts) + "\n", notes


class ReferenceCallRefused(RuntimeError):
    """Raised in place of a graded function that only calls its ``ust`` reference."""


def _root_name(node: ast.AST) -> str | None:
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def reference_calls(source: str) -> dict[str, list[str]]:
    """Top-level functions of ``source`` that use the ``ust`` object computing their own answer.

    Follows ``import ust``, ``import ust.scores as s`` and ``from ust import x as y``.

    Returns:
        ``{function name: [the expressions used, e.g. "ust.regression_error"]}``.
    """
    tree = ast.parse(source)
    modules: set[str] = set()
    imported: dict[str, str] = {}  # local name -> name in ust
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {a.asname or a.name.split(".")[0] for a in node.names if a.name.split(".")[0] == "ust"}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "ust":
            imported.update({a.asname or a.name: a.name for a in node.names})
    found: dict[str, list[str]] = {}
    for function in tree.body:
        if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        banned = {function.name} | REFERENCE_NAMES.get(function.name, set())
        hits = set()
        for node in ast.walk(function):
            if isinstance(node, ast.Attribute) and node.attr in banned and _root_name(node) in modules | set(imported):
                hits.add(ast.unparse(node))
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and imported.get(node.id) in banned:
                hits.add(node.id)
        if hits:
            found[function.name] = sorted(hits)
    return found


def _refuse_reference_calls(namespace: dict, source: str, notes: list[str]) -> None:
    """Replace the functions that call their own ``ust`` reference by ones that raise, with a note."""
    try:
        calls = reference_calls(source)
    except SyntaxError:
        return
    for name, used in calls.items():
        message = (f"{name} calls {', '.join(used)}, the ust reference the checks compare with: "
                   "write it yourself (no credit for this function).")

        def refused(*args, _message=message, **kwargs):
            raise ReferenceCallRefused(_message)

        namespace[name] = refused
        notes.append(message)


def load_namespace(path: str | Path, assignment: int | None = None) -> tuple[dict, list[str]]:
    """Execute a submission's definitions and return its namespace and notes.

    Runs the student's code in this process: call it in a separate process
    (as the grader does) for code you do not trust to finish.
    """
    file = resolve_submission(path, assignment)
    folder = str(file.parent.resolve())
    if folder not in sys.path:
        sys.path.insert(0, folder)
    notes: list[str] = []
    if file.suffix == ".py":
        module_name = f"_submission_{abs(hash(str(file.resolve())))}"
        spec = importlib.util.spec_from_file_location(module_name, file)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
        _refuse_reference_calls(vars(module), file.read_text(encoding="utf-8", errors="replace"), notes)
        return vars(module), notes
    source, notes = notebook_definitions(file)
    module = types.ModuleType(f"_notebook_{file.stem}")
    module.__file__ = str(file)
    exec(compile(source, f"{file.name} (definitions)", "exec"), module.__dict__)  # noqa: S102
    _refuse_reference_calls(vars(module), source, notes)
    return vars(module), notes
