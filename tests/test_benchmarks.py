"""The student benchmarks in benchmarks/ run end to end on the embedded digits and agree with each other."""

import subprocess
import sys
from pathlib import Path

import pytest

from ust.report import aggregation_table, read_aggregation, read_budget

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
TINY = ["--dataset", "digits", "--classes", "1", "--max-test", "60", "--students", "2", "--threads", "1",
        "--no-progress"]


def _run(script, *args):
    done = subprocess.run([sys.executable, str(BENCHMARKS / script), *TINY, *args], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_budget_and_aggregation_score_the_same_students_alike(tmp_path):
    """Both train with the fast protocol's seeding: at equal steps the mean-reduction rows are the same numbers."""
    out = _run("student_budget.py", "--checkpoints", "1", "2", "--out", str(tmp_path / "budget.csv"))
    assert "validation chooses" in out
    budget = read_budget(tmp_path / "budget.csv")
    assert list(budget["iteration"]) == [1, 2] and (budget["n_test"] == 60).all()
    assert budget[["val_auroc_splice", "val_auroc_swap"]].notna().all().all()      # every kind by default

    out = _run("score_aggregation.py", "--iterations", "2", "--out", str(tmp_path / "aggregation.csv"))
    assert "validation by turns chooses the" in out
    table = aggregation_table(read_aggregation(tmp_path / "aggregation.csv"))
    last = budget.iloc[-1]
    for score in ("val_auroc", "val_auroc_rotate", "auroc"):
        assert table.loc["1", (score, "mean")] == pytest.approx(last[score], abs=1e-12), score
    assert ((table >= 0) & (table <= 1)).all().all()


@pytest.mark.parametrize("args, message", [
    (["--seed", "1", "--out", "x.csv"], "holds seed 0 only; got --seed 1"),
    (["--validation", "rotate", "splice"], "must include 'stroke'"),
])
def test_budget_refuses_what_its_csv_cannot_hold(tmp_path, args, message):
    done = subprocess.run([sys.executable, str(BENCHMARKS / "student_budget.py"), *TINY, *args], capture_output=True,
                          text=True, timeout=600, cwd=tmp_path)
    assert done.returncode != 0 and message in done.stderr
    assert not (tmp_path / "x.csv").exists()
