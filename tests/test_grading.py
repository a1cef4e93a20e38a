"""Course assignments: the checks bite, the solutions pass, the grader grades a folder.

Fixtures in tests/fixtures/submissions/: assignment1/ holds a deliberately
wrong module and a notebook with the solution's functions (plus cells the
grader must not run); faulty/ holds a file that does not parse, one that
hangs and a broken notebook. The untouched starter and the solution modules
are copied from book/assignments/ and assignments/solutions/ at test time,
so the fixtures cannot drift from them.
"""

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import ust
from ust import grading
from ust.grading.checks import FUNCTIONS
from ust.grading.loading import notebook_definitions, resolve_submission
from ust.grading.starter import make_starter

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "assignments" / "solutions"
STARTERS = ROOT / "book" / "assignments"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "submissions"


def text(report) -> str:
    """The messages of a report, unwrapped (str(report) wraps long lines)."""
    return "\n".join(f"{r.function}: {r.message}" for r in report.results)


def solution(n: int) -> Path:
    return SOLUTIONS / f"a{n}_solution.py"


def starter(n: int) -> Path:
    return STARTERS / f"a{n}_starter.py"


# --------------------------------------------------------------------------- solutions, starters

@pytest.mark.parametrize("n", [1, 2])
def test_solution_passes_every_public_and_hidden_check(n):
    report = grading.check(solution(n), n, hidden=True, verbose=False)
    assert report.all_passed, str(report)
    assert len(report.results) == len(grading.all_checks(n))
    assert any(r.hidden for r in report.results) and any(not r.hidden for r in report.results)


@pytest.mark.parametrize("n", [1, 2])
def test_untouched_starter_fails_every_check(n):
    report = grading.check(starter(n), n, hidden=True, verbose=False)
    assert report.score == 0 and report.n_passed == 0
    assert {r.status for r in report.results} == {"not implemented"}
    assert "fill in its TODO block" in text(report)


@pytest.mark.parametrize("n", [1, 2])
def test_starter_is_made_from_the_solution(n):
    expected = make_starter(solution(n).read_text(encoding="utf-8"))
    assert starter(n).read_text(encoding="utf-8") == expected, (
        f"book/assignments/a{n}_starter.py is out of date: run python -m ust.grading make-starter "
        f"assignments/solutions/a{n}_solution.py -o book/assignments/a{n}_starter.py")
    assert "BEGIN SOLUTION" not in expected and "SOLUTION ONLY" not in expected
    assert expected.count("raise NotImplementedError(\"") == len(FUNCTIONS[n])


def test_every_checked_function_has_public_and_hidden_checks():
    for n, names in FUNCTIONS.items():
        public = {c.function for c in grading.public_checks(n)}
        hidden = {c.function for c in grading.hidden_checks(n)}
        assert public == hidden == set(names)


def test_make_starter_markers():
    text = ("def f(x):\n    # TODO: double it\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION\n"
            "secret = 1  ### SOLUTION ONLY\n")
    assert make_starter(text) == ('def f(x):\n    # TODO: double it\n'
                                  '    raise NotImplementedError("f: fill in this TODO block")\n')
    with pytest.raises(ValueError, match="without"):
        make_starter("    ### END SOLUTION\n")
    with pytest.raises(ValueError, match="without"):
        make_starter("    ### BEGIN SOLUTION\n")


# --------------------------------------------------------------------------- messages

def _results(report):
    return {(r.function, r.name): r for r in report.results}


def test_wrong_submission_gets_partial_credit_and_named_mistakes():
    report = grading.check(FIXTURES / "assignment1" / "wrong_module.py", 1, hidden=True, verbose=False)
    by_function = {}
    for r in report.results:
        by_function.setdefault(r.function, []).append(r)
    # regression_error and fit_score_normalization are right; the loss passes on 1x1 maps (sum == mean);
    # the reversed variance is right where it is 0 (M = 1, identical students)
    assert all(r.passed for r in by_function["regression_error"] + by_function["fit_score_normalization"])
    assert report.n_passed == 9, str(report)
    messages = text(report)
    assert "use the unbiased one" in messages
    assert "normalise with the teacher's std, not the variance" in messages
    assert "loss is 24x too large: average over the positions" in messages
    assert "variance is negative" in messages
    assert "you returned only the normalised error" in messages


def test_messages_for_other_typical_mistakes():
    def loss_mean_over_channels(student, target):
        return (student - target).square().mean()

    def variance_forgot_mean(predictions):
        return predictions.square().sum(2).mean(0)

    def variance_unbiased(predictions):
        m = predictions.shape[0]
        return (predictions - predictions.mean(0)).square().sum(2).sum(0) / (m - 1)

    def error_mean_of_errors(predictions, target):
        return (predictions - target).square().sum(2).mean(0)

    def broadcast_wrong(descriptors, mean, std, eps=1e-6):
        return (descriptors - mean) / std

    def float_dtype(descriptors, mean, std, eps=1e-6):
        return ((descriptors - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)).float()

    cases = {
        "student_regression_loss": (loss_mean_over_channels, "loss is 5x too small: sum the squared differences"),
        "regression_error": (error_mean_of_errors, "you averaged the students' errors"),
    }
    for name, (fn, expected) in cases.items():
        fn.__name__ = name
        assert expected in text(grading.check(fn, 1, verbose=False))
    variance = {"predictive_variance": variance_forgot_mean}
    assert "did you subtract the squared norm" in text(grading.check(variance, 1, verbose=False))
    variance = {"predictive_variance": variance_unbiased}
    hidden = text(grading.check(variance, 1, hidden=True, verbose=False))
    assert "divide by M, not M - 1" in hidden and "with M = 1 the variance must be 0" in hidden
    public = text(grading.check({"normalize_descriptors": broadcast_wrong}, 1, verbose=False))
    assert "raised RuntimeError" in public and "reshape it to (1, d, 1, 1)" in public
    hidden = text(grading.check({"normalize_descriptors": broadcast_wrong}, 1, hidden=True, verbose=False))
    assert "applied along the last axis (W)" in hidden
    hidden = text(grading.check({"normalize_descriptors": float_dtype}, 1, hidden=True, verbose=False))
    assert "dtype torch.float32, expected torch.float64" in hidden


def test_messages_assignment2():
    def fuse_sum(scores):
        return torch.stack(list(scores)).sum(0)

    def auroc_inverted(scores, labels):
        from ust.metrics import image_auroc
        return 1 - image_auroc(scores, labels)

    def auroc_strict(scores, labels):
        y = labels.bool()
        return float((scores[y][:, None] > scores[~y][None, :]).double().mean())

    assert "Eq. 13 averages over the L = 3 scales" in text(grading.check({"fuse_scales": fuse_sum}, 2, verbose=False))
    assert "AUROC is 1 - expected" in text(grading.check({"auroc": auroc_inverted}, 2, verbose=False))
    assert "you counted them as 0" in text(grading.check({"auroc": auroc_strict}, 2, verbose=False))


def test_check_never_raises_and_reports_missing_functions(capsys):
    def crashes(descriptors):
        raise KeyError("boom")

    report = grading.check({"channel_statistics": crashes}, 1)
    out = capsys.readouterr().out
    assert "✗" in out and "raised KeyError" in out
    assert "no function normalize_descriptors() found" in out
    assert report.score == 0 and not report.all_passed


def test_check_accepts_a_module_and_infers_the_assignment(capsys):
    module = type(sys)("a2_like")
    exec(solution(2).read_text(), module.__dict__)
    report = grading.check(module)
    assert report.assignment == 2 and report.all_passed
    assert "6/6 checks passed: all good." in capsys.readouterr().out


# --------------------------------------------------------------------------- loading

def test_notebook_definitions_keep_only_imports_defs_and_constants():
    source, notes = notebook_definitions(FIXTURES / "assignment1" / "solution_notebook.ipynb")
    assert "def predictive_variance" in source and "EPS = 1e-06" in source and "import torch" in source
    assert "RuntimeError" not in source and "print(" not in source and "echo" not in source
    assert len(notes) == 1 and "does not parse" in notes[0]


def test_resolve_submission_folders(tmp_path):
    (tmp_path / "alice").mkdir()
    shutil.copy(starter(1), tmp_path / "alice" / "a1_starter.py")
    (tmp_path / "alice" / "work.ipynb").write_text("{}")
    assert resolve_submission(tmp_path / "alice", 1).name == "a1_starter.py"
    (tmp_path / "bob").mkdir()
    (tmp_path / "bob" / "x.py").write_text("")
    (tmp_path / "bob" / "y.py").write_text("")
    with pytest.raises(ValueError, match="several"):
        resolve_submission(tmp_path / "bob", 1)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no .py"):
        resolve_submission(tmp_path / "empty", 1)


# --------------------------------------------------------------------------- the grader

def _read_csv(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return {row["submission"]: row for row in csv.DictReader(handle)}


def test_grader_scores_solution_stub_and_wrong_submission(tmp_path):
    folder = tmp_path / "submissions"
    folder.mkdir()
    shutil.copy(FIXTURES / "assignment1" / "solution_notebook.ipynb", folder / "alice_solution.ipynb")
    shutil.copy(starter(1), folder / "bob_stub.py")
    shutil.copy(FIXTURES / "assignment1" / "wrong_module.py", folder / "carol_wrong.py")
    (folder / "dave").mkdir()  # one student's folder: the notebook imports the starter module next to it
    shutil.copy(solution(1), folder / "dave" / "a1_starter.py")
    (folder / "dave" / "work.ipynb").write_text(json.dumps({"cells": [
        {"cell_type": "code", "source": "from a1_starter import *\nmodel = train_students(None, None)"}]}))
    out = tmp_path / "scores.csv"
    rows = grading.grade_folder(folder, 1, out, timeout=120, progress=False)
    assert [r.submission for r in rows] == ["alice_solution.ipynb", "bob_stub.py", "carol_wrong.py", "dave"]
    table = _read_csv(out)
    total = str(len(grading.all_checks(1)))
    assert table["alice_solution.ipynb"]["score"] == total and table["alice_solution.ipynb"]["percent"] == "100"
    assert "does not parse" in table["alice_solution.ipynb"]["messages"]  # a note, not a penalty
    assert table["bob_stub.py"]["status"] == "graded" and table["bob_stub.py"]["score"] == "0"
    assert "NotImplementedError" in table["bob_stub.py"]["messages"]
    assert table["carol_wrong.py"]["score"] == "9" and table["carol_wrong.py"]["max_score"] == total
    assert "loss is 24x too large" in table["carol_wrong.py"]["messages"]
    assert table["dave"]["score"] == total
    assert list(next(iter(table.values())).keys()) == list(grading.grader.CSV_COLUMNS)


def test_grader_survives_broken_and_hanging_submissions(tmp_path):
    out = tmp_path / "scores.csv"
    rows = grading.grade_folder(FIXTURES / "faulty", 1, out, timeout=3, progress=False)
    table = _read_csv(out)
    assert [r.submission for r in rows] == ["hangs.py", "not_a_notebook.ipynb", "syntax_error.py"]
    assert table["hangs.py"]["status"] == "timeout" and table["hangs.py"]["score"] == "0"
    assert "timed out after 3 s" in table["hangs.py"]["messages"]
    assert table["syntax_error.py"]["status"] == "error" and "SyntaxError" in table["syntax_error.py"]["messages"]
    assert table["not_a_notebook.ipynb"]["status"] == "error"
    assert "not a readable Jupyter notebook" in table["not_a_notebook.ipynb"]["messages"]


def test_command_line_check_and_grade(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "ust.grading", *args], capture_output=True, text=True,
                              timeout=300, cwd=tmp_path)

    done = run("check", str(starter(2)))
    assert done.returncode == 1 and "✗" in done.stdout
    folder = tmp_path / "subs"
    folder.mkdir()
    shutil.copy(solution(2), folder / "eve.py")
    done = run("grade", str(folder), "--assignment", "2", "--out", str(tmp_path / "s.csv"), "--public-only")
    assert done.returncode == 0, done.stderr
    assert _read_csv(tmp_path / "s.csv")["eve.py"]["score"] == str(len(grading.public_checks(2)))


# --------------------------------------------------------------------------- assignment 2 without all teachers

def _module(path: Path):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"_test_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_assignment2_runs_with_whichever_teachers_are_shipped(monkeypatch, capsys):
    a2 = _module(starter(2))  # the given helpers are the same in the starter and the solution
    monkeypatch.setattr(ust, "available_teachers", lambda: [])
    teachers = a2.load_teachers((17, 33), stand_ins=True)
    assert list(teachers) == [17, 33] and all(isinstance(t, ust.PatchNet) for t in teachers.values())
    assert [a2.scale_name(p, t) for p, t in teachers.items()] == ["p = 17 (random)", "p = 33 (random)"]
    assert "a RANDOM p = 17 network stands in" in capsys.readouterr().out
    with pytest.raises(ValueError, match="none of the patch sizes"):
        a2.load_teachers((17, 65), stand_ins=False)
    monkeypatch.setattr(ust, "available_teachers", lambda: [(33, "kc")])
    monkeypatch.setattr(ust, "pretrained_teacher", lambda p, v="kc": ust.PatchNet(p).eval())
    teachers = a2.load_teachers((17, 33, 65))  # by default a missing scale is left out, never faked
    assert list(teachers) == [33] and a2.scale_name(33, teachers[33]) == "p = 33"
    assert "scale p = 65 is left out" in capsys.readouterr().out


def test_calling_the_ust_reference_earns_no_credit(tmp_path):
    """A stub filled with `return ust.regression_error(...)` would pass every check: the grader refuses it."""
    from ust.grading.loading import load_namespace, reference_calls

    source = solution(1).read_text()
    source = source.replace("def regression_error(", "def _own_regression_error(", 1)
    source += ("\n\nfrom ust import predictive_variance as _pv\n\n"
               "def regression_error(predictions, target):\n    return ust.regression_error(predictions, target)\n")
    source = source.replace("def predictive_variance(", "def _own_predictive_variance(", 1)
    source += "\n\ndef predictive_variance(predictions):\n    return _pv(predictions)\n"
    path = tmp_path / "a1_starter.py"
    path.write_text(source)
    assert reference_calls(source) == {"regression_error": ["ust.regression_error"], "predictive_variance": ["_pv"]}
    namespace, notes = load_namespace(path, 1)
    assert any("regression_error calls ust.regression_error" in n for n in notes)
    report = grading.run_checks_on(namespace, 1, hidden=True)
    refused = [r for r in report.results if r.function in ("regression_error", "predictive_variance")]
    assert refused and not any(r.passed for r in refused)
    assert "the ust reference the checks compare with" in text(report)
    others = [r for r in report.results if r.function not in ("regression_error", "predictive_variance")]
    assert all(r.passed for r in others)  # the rest of the solution keeps its credit
