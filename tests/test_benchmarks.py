"""The student benchmarks in benchmarks/ run end to end on the embedded digits and agree with each other."""

import subprocess
import sys
from pathlib import Path

import pytest

import ust
from ust.report import (aggregation_table, capacity_table, read_aggregation, read_budget, read_capacity,
                        read_scale_choice, scale_choice_table)

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
    assert (budget["teacher"] == "pretrained:33:kc").all() and (budget["patch_size"] == 33).all()
    assert (budget["lr_schedule"] == "constant").all()

    out = _run("score_aggregation.py", "--iterations", "2", "--out", str(tmp_path / "aggregation.csv"))
    assert "validation by turns chooses the" in out
    table = aggregation_table(read_aggregation(tmp_path / "aggregation.csv"))
    last = budget.iloc[-1]
    for score in ("val_auroc", "val_auroc_rotate", "auroc"):
        assert table.loc["1", (score, "mean")] == pytest.approx(last[score], abs=1e-12), score
    assert ((table >= 0) & (table <= 1)).all().all()

    # the scale choice trains p = 17 and p = 33 alike: its p = 33 row is the budget's last pause once more
    for _ in range(2):                                   # a rerun replaces the class's rows instead of adding them
        out = _run("scale_choice.py", "--iterations", "2", "--out", str(tmp_path / "scales.csv"))
    assert "validation by splice chooses" in out
    scales = read_scale_choice(tmp_path / "scales.csv")
    assert list(scales["scale"]) == ["17", "33", "fused"]
    p33 = scales.set_index("scale").loc["33"]
    for score in ("val_auroc", "val_auroc_rotate", "val_auroc_splice", "val_auroc_swap", "auroc", "auroc_variance"):
        assert p33[score] == pytest.approx(last[score], abs=1e-12), score
    assert list(scale_choice_table(scales).index) == ["1", "mean"]


def test_budget_with_a_teacher_checkpoint(tmp_path):
    """--teacher trains under another teacher; its file name goes to the teacher column, its p to patch_size."""
    ust.save_teacher(tmp_path / "tiny_p17.pt", ust.PatchNet(17, out_dim=16))
    _run("student_budget.py", "--checkpoints", "1", "--validation", "stroke", "--lr-schedule", "cosine",
         "--teacher", str(tmp_path / "tiny_p17.pt"), "--out", str(tmp_path / "budget.csv"))
    budget = read_budget(tmp_path / "budget.csv")
    assert budget[["teacher", "patch_size", "lr_schedule", "iteration"]].values.tolist() == [
        ["tiny_p17", 17, "cosine", 1]]
    assert budget[["val_auroc_rotate", "val_auroc_splice", "val_auroc_swap"]].isna().all().all()


def test_teacher_capacity_benchmark(tmp_path):
    """An 8-channel teacher on the digits' patches: the row is distillation_capacity's result; rerun replaces it."""
    import numpy as np
    import torch

    from ust.backbones import load_backbone
    from ust.data import load_dataset
    from ust.data.patches import PatchSampler
    from ust.training import distillation_capacity

    torch.manual_seed(0)
    teacher = ust.PatchNet(17, out_dim=8).eval()
    ust.save_teacher(tmp_path / "tiny_p17.pt", teacher)
    args = [sys.executable, str(BENCHMARKS / "teacher_capacity.py"), "--teachers", str(tmp_path / "tiny_p17.pt"),
            "--sources", "digits", "--patches", "128", "--threads", "1", "--out", str(tmp_path / "capacity.csv")]
    for _ in range(2):
        done = subprocess.run(args, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
    frame = read_capacity(tmp_path / "capacity.csv")
    assert frame[["teacher", "source", "patch_size", "n_patches"]].values.tolist() == [["tiny_p17", "digits", 17, 128]]
    # the same patches (the benchmark's seed 1, every training image, no upscaling) measured here
    digits = np.repeat(load_dataset("digits").train.images, 3, axis=-1)
    expected = distillation_capacity(teacher, load_backbone(), PatchSampler(digits, 17, max_shift=0, seed=1),
                                     n_patches=128)
    row = frame.iloc[0]
    for key, value in expected.items():
        assert row[key] == pytest.approx(value, rel=1e-5, abs=1e-5), key   # other thread count: last digits
    assert row["explained"] <= row["ceiling"] <= 1
    run = ("tiny_p17", frame["iterations"].iloc[0])
    assert capacity_table(frame).loc[run, ("digits", "explained")] == row["explained"]
    done = subprocess.run(args[:4] + ["--sources", "pretraining"], capture_output=True, text=True, timeout=600)
    assert done.returncode != 0 and "needs --images" in done.stderr


@pytest.mark.parametrize("args, message", [
    (["--seed", "1", "--out", "x.csv"], "holds seed 0 only; got --seed 1"),
    (["--teacher", "pretrained:17", "--patch-size", "33"], "has p = 17, not --patch-size 33"),
    (["--validation", "rotate", "splice"], "must include 'stroke'"),
    (["--lr-schedule", "cosine", "--checkpoints", "1", "2"], "give one --checkpoints value"),
])
def test_budget_refuses_what_its_csv_cannot_hold(tmp_path, args, message):
    done = subprocess.run([sys.executable, str(BENCHMARKS / "student_budget.py"), *TINY, *args], capture_output=True,
                          text=True, timeout=600, cwd=tmp_path)
    assert done.returncode != 0 and message in done.stderr
    assert not (tmp_path / "x.csv").exists()


def test_student_step_benchmark_checks_the_grouped_students_and_times_four_ways():
    """One tiny timing of each way; the ratios are printed against ust's own step (1.00 for itself)."""
    done = subprocess.run([sys.executable, str(BENCHMARKS / "student_step.py"), "--patch-size", "17", "--students", "2",
                           "--batch-size", "1", "--image-size", "20", "--steps", "1", "--repeats", "1",
                           "--threads", "1"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "grouped against ust: losses agree to" in done.stdout
    timings = [line for line in done.stdout.splitlines() if line.endswith("x ust's")]
    assert [line.split(":")[0].strip() for line in timings] == [
        "ust (one network per student)", "contiguous", "grouped", "bfloat16"]
    assert timings[0].split(",")[-1].strip() == "1.00 x ust's"
