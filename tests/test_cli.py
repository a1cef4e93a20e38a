"""``python -m ust``: end to end on tiny settings, and one-line errors for bad input."""

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import ust
import ust.data.datasets as datasets
from ust.checkpoints import load_student_teacher, load_teacher, save_student_teacher, save_teacher
from ust.cli import main
from ust.data import load_dataset, one_class_split
from ust.experiments import COLUMNS, load_splits, read_rows
from ust.metrics import image_auroc, pixel_auroc
from ust.model import StudentTeacher

ROOT = Path(__file__).resolve().parents[1]
QUIET = ["--no-progress", "--device", "cpu"]


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def run(*args):
    """``main(args)`` in-process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def _number(text):
    try:
        return float(text)
    except ValueError:
        return text


def table_row(text, first):
    """The cells after ``first`` of the printed table row that starts with it (numbers as floats)."""
    line = next(line for line in text.splitlines() if line.startswith(first))
    return [_number(x) for x in line[len(first):].split()]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny arrays dataset (8x8, classes cat/dog/frog), tiny checkpoints and a corrupt file."""
    tmp = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)

    def part(n):
        x = rng.integers(0, 40, size=(3 * n, 8, 8), dtype=np.uint8)
        for k in range(3):
            x[k * n:(k + 1) * n, 2 * k:2 * k + 4, 2:6] += 200
        return x, np.repeat(np.arange(3), n)

    (x_train, y_train), (x_test, y_test) = part(12), part(4)
    np.savez(tmp / "tiny.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
             classes=np.array(["cat", "dog", "frog"]))
    torch.manual_seed(0)
    (tmp / "teachers").mkdir()
    teacher = ust.PatchNet(33, out_dim=8)
    save_teacher(tmp / "teachers" / "teacher_33.pt", teacher, {"data": "random weights"})
    model = StudentTeacher(teacher, ust.make_students(33, 2, out_dim=8), torch.zeros(8), torch.ones(8),
                           normalization=ust.ScoreNormalization(1.0, 1.0, 1.0, 1.0))
    save_student_teacher(tmp / "st.pt", model, {"image_size": [8, 8]})
    (tmp / "corrupt.pt").write_bytes(b"not a checkpoint at all")
    return tmp


# --------------------------------------------------------------------------- help

def test_python_m_ust_help_in_a_subprocess():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "ust", "--help"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    for word in ("pretrain-teacher", "train-students", "evaluate", "benchmark", "examples:"):
        assert word in done.stdout


@pytest.mark.parametrize("command", ["pretrain-teacher", "train-students", "evaluate", "benchmark", "baselines"])
def test_every_subcommand_explains_itself(command):
    code, out, _ = run(command, "--help")
    assert code == 0 and "examples:" in out and f"python -m ust {command}" in out
    assert len(out.split("\n\n")[1]) > 200  # a paragraph of description


# --------------------------------------------------------------------------- end to end on the digits

@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """pretrain-teacher -> train-students -> evaluate on the embedded digits, tiny settings."""
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("digits")
    digits = load_dataset("digits")
    np.savez(tmp / "natural.npz", x_train=np.repeat(digits.train.images[:64], 3, axis=-1))
    results = {"tmp": tmp}
    with pytest.MonkeyPatch.context() as patch:  # build the digits once (seconds on a busy CPU), not per command
        patch.setattr(datasets, "_load_digits", lambda: digits)
        _digits_commands(tmp, results)
    return results


def _digits_commands(tmp, results):
    results["pretrain"] = run("pretrain-teacher", "--patch-size", 33, "--images", tmp / "natural.npz",
                              "--iterations", 3, "--batch-size", 8, "--lambda-k", 0, "--lambda-m", 1,
                              "--out", tmp / "teacher_33.pt", *QUIET)
    results["train"] = run("train-students", "--teacher", tmp / "teacher_33.pt", "--dataset", "digits",
                           "--normal-class", 3, "--iterations", 3, "--batch-size", 4, "--max-train", 40,
                           "--lr-schedule", "cosine", "--out", tmp / "st_33.pt", *QUIET)
    results["evaluate"] = run("evaluate", "--model", tmp / "st_33.pt", "--dataset", "digits", "--normal-class", 3,
                              "--max-test", 60, *QUIET)


def test_pretrain_teacher_writes_a_checkpoint_and_a_log(digits_run):
    code, out, err = digits_run["pretrain"]
    assert code == 0, err
    path = digits_run["tmp"] / "teacher_33.pt"
    teacher, meta = load_teacher(path, patch_size=33)
    assert teacher.out_dim == 128 and meta["data"]["count"] == 64 and meta["data"]["path"].endswith("natural.npz")
    assert meta["settings"]["iterations"] == 3 and meta["settings"]["batch_size"] == 8
    assert meta["settings"]["backbone"] is None  # --lambda-k 0: no backbone loaded
    assert set(meta["final_losses"]) == {"total", "metric", "compactness"} and meta["seconds"] > 0
    assert meta["hardware"].startswith("cpu") and "pretrain-teacher --patch-size 33" in meta["command"]
    log = json.loads(path.with_suffix(".json").read_text())
    assert len(log["history"]["total"]) == 3
    assert log["final_losses"]["total"] == pytest.approx(sum(log["history"]["total"]) / 3)
    assert f"Saved the teacher to {path}" in out


def test_train_students_saves_a_calibrated_model(digits_run):
    code, out, err = digits_run["train"]
    assert code == 0, err
    model, meta = load_student_teacher(digits_run["tmp"] / "st_33.pt", patch_size=33)
    assert model.n_students == 3 and model.normalization is not None
    assert (meta["dataset"], meta["normal_class"], meta["class_name"]) == ("digits", 3, "3")
    # digits: 1,198 training images, 122 of them threes; 12 held out, 40 kept by --max-train.
    assert (meta["n_train"], meta["n_val"], meta["image_size"]) == (40, 12, [28, 28])
    assert meta["settings"]["iterations"] == 3 and meta["settings"]["batch_size"] == 4
    assert meta["settings"]["lr_schedule"] == "cosine"
    assert meta["teacher"]["source"].endswith("teacher_33.pt") and meta["teacher"]["metadata"]["patch_size"] == 33
    assert "Trained 3 students p=33 on 40 images of class 3" in out


def test_evaluate_prints_the_image_auroc(digits_run):
    code, out, err = digits_run["evaluate"]
    assert code == 0, err
    # 60 of the 599 test images, stratified: 6 of the 61 threes (and 6 of every other digit).
    assert "60 test images (a fixed stratified subset), 6 normal and 54 anomalous" in out
    auroc = table_row(out, str(digits_run["tmp"] / "st_33.pt"))
    assert auroc[0] == 33 and len(auroc) == 4 and all(0 <= a <= 1 for a in auroc[1:])


# --------------------------------------------------------------------------- end to end on tiny arrays

def test_two_scales_fused_and_synthetic_maps(files, tmp_path):
    for p in (17, 33):
        code, _, err = run("train-students", "--teacher", files / "teachers" / "teacher_33.pt" if p == 33 else
                           _save_teacher17(tmp_path), "--dataset", files / "tiny.npz", "--normal-class", "dog",
                           "--students", 2, "--iterations", 2, "--batch-size", 4, "--out", tmp_path / f"st{p}.pt",
                           *QUIET)
        assert code == 0, err
    code, out, err = run("evaluate", "--model", tmp_path / "st17.pt", "--model", tmp_path / "st33.pt", "--dataset",
                         files / "tiny.npz", "--normal-class", "dog", "--synthetic", "blob", *QUIET)
    assert code == 0, err
    models = [load_student_teacher(tmp_path / f"st{p}.pt")[0] for p in (17, 33)]
    data = one_class_split(load_splits(files / "tiny.npz"), 1, channels=3, seed=0)
    scores = [m.image_scores(data.test) for m in models]
    printed = [table_row(out, str(tmp_path / f"st{p}.pt")) for p in (17, 33)]
    for row, s in zip(printed, scores):
        assert row[1] == pytest.approx(image_auroc(s, data.test_labels), abs=5e-5)
    fused = table_row(out, "fused (Eq. 13)")
    assert fused[1] == pytest.approx(image_auroc((scores[0] + scores[1]) / 2, data.test_labels), abs=5e-5)
    # Pixel AUROC of the fused dense maps on the 4 normal test images and their blob versions.
    normal = data.test[data.test_labels == 0]
    anomalous, masks = ust.data.add_synthetic_anomalies(normal, kind="blob", seed=0)
    images, truth = torch.cat([normal, anomalous]), torch.cat([torch.zeros_like(masks), masks])
    maps = torch.stack([m.score_maps(images, dense=True) for m in models]).mean(0)
    synthetic = out.split("Synthetic 'blob' anomalies")[1]
    assert table_row(synthetic, "fused (Eq. 13)")[1] == pytest.approx(pixel_auroc(maps, truth), abs=5e-5)
    assert 0 <= table_row(synthetic, "fused (Eq. 13)")[2] <= 1


def _save_teacher17(tmp_path):
    torch.manual_seed(1)
    return save_teacher(tmp_path / "teacher_17.pt", ust.PatchNet(17, out_dim=8))


def test_benchmark_command_writes_the_csv_and_resumes(files, tmp_path):
    args = ["benchmark", "--dataset", files / "tiny.npz", "--classes", "0-1", "--scales", 33, "--teachers",
            files / "teachers", "--students", 2, "--iterations", 2, "--batch-size", 4, "--out", tmp_path / "b.csv",
            *QUIET]
    code, out, err = run(*args)
    assert code == 0, err
    rows = read_rows(tmp_path / "b.csv")
    assert len(rows) == 2 * 3 and {r["class_name"] for r in rows} == {"cat", "dog"}
    both = {r["normal_class"]: r["auroc"] for r in rows if r["components"] == "both"}
    assert f"class 0 ('cat') seed 0: p=33 {both[0]:.4f}" in out
    mean = next(line.split() for line in out.splitlines() if line.split()[:2] == ["33", "both"])
    assert float(mean[2]) == pytest.approx((both[0] + both[1]) / 2, abs=5e-5) and mean[3:] == ["nan", "2", "1"]
    settings = json.loads((tmp_path / "b.json").read_text())
    assert settings["notes"]["teachers"] == {"33": str(files / "teachers" / "teacher_33.pt")}
    code, out, _ = run(*args)
    assert code == 0 and out.count("already in the CSV") == 2 and len(read_rows(tmp_path / "b.csv")) == 6
    assert tuple((tmp_path / "b.csv").read_text().splitlines()[0].split(",")) == COLUMNS


def test_pretrained_teacher_spec(files, tmp_path, monkeypatch):
    monkeypatch.setattr(ust, "pretrained_teacher", lambda p: ust.PatchNet(p, out_dim=8), raising=False)
    code, _, err = run("train-students", "--teacher", "pretrained:33", "--dataset", files / "tiny.npz",
                       "--normal-class", "cat", "--students", 1, "--iterations", 1, "--out", tmp_path / "st.pt",
                       *QUIET)
    assert code == 0, err
    assert load_student_teacher(tmp_path / "st.pt")[1]["teacher"]["source"] == "pretrained:33"


# --------------------------------------------------------------------------- bad input: one line, status 2

BAD = {
    "unknown dataset (train-students)": (["train-students", "--teacher", "{d}/teachers/teacher_33.pt", "--dataset",
                                          "svhn", "--normal-class", "0", "--out", "{d}/x.pt"],
                                         "unknown dataset 'svhn': choose one of mnist, cifar10, digits, "
                                         "mnist-or-digits"),
    "unknown dataset (evaluate)": (["evaluate", "--model", "{d}/st.pt", "--dataset", "svhn", "--normal-class", "0"],
                                   "unknown dataset 'svhn'"),
    "unknown dataset (benchmark)": (["benchmark", "--dataset", "svhn", "--classes", "0", "--scales", "33",
                                     "--teachers", "{d}/teachers", "--out", "{d}/b.csv"], "unknown dataset 'svhn'"),
    "missing arrays file": (["evaluate", "--model", "{d}/st.pt", "--dataset", "{d}/nope.npz", "--normal-class", "0"],
                            "no arrays file"),
    "unknown class (train-students)": (["train-students", "--teacher", "{d}/teachers/teacher_33.pt", "--dataset",
                                        "{d}/tiny.npz", "--normal-class", "horse", "--out", "{d}/x.pt"],
                                       "unknown class 'horse'"),
    "unknown class (evaluate)": (["evaluate", "--model", "{d}/st.pt", "--dataset", "{d}/tiny.npz", "--normal-class",
                                  "7"], "the classes are 0 'cat', 1 'dog', 2 'frog'"),
    "unknown class (benchmark)": (["benchmark", "--dataset", "{d}/tiny.npz", "--classes", "0-5", "--scales", "33",
                                   "--teachers", "{d}/teachers", "--out", "{d}/b.csv"], "unknown class 5"),
    "patch size (pretrain-teacher)": (["pretrain-teacher", "--patch-size", "20", "--images", "{d}/tiny.npz",
                                       "--out", "{d}/t.pt"], "invalid choice: 20 (choose from 17, 33, 65)"),
    "patch size (benchmark)": (["benchmark", "--dataset", "digits", "--classes", "0", "--scales", "33", "20",
                                "--teachers", "{d}/teachers", "--out", "{d}/b.csv"], "invalid choice: 20"),
    "patch size (pretrained:P)": (["train-students", "--teacher", "pretrained:20", "--dataset", "digits",
                                   "--normal-class", "0", "--out", "{d}/x.pt"], "unsupported patch size '20'"),
    "no teacher for a scale": (["benchmark", "--dataset", "{d}/tiny.npz", "--classes", "0", "--scales", "17",
                                "--teachers", "{d}/teachers", "--out", "{d}/b.csv"],
                               "no teacher for patch size 17 in the folder"),
    "missing teacher file": (["train-students", "--teacher", "{d}/nope.pt", "--dataset", "digits", "--normal-class",
                              "0", "--out", "{d}/x.pt"], "nope.pt: the file does not exist"),
    "missing model file": (["evaluate", "--model", "{d}/nope.pt", "--dataset", "digits", "--normal-class", "0"],
                           "--model {d}/nope.pt: the file does not exist"),
    "missing teachers file": (["benchmark", "--dataset", "digits", "--classes", "0", "--scales", "33", "--teachers",
                               "{d}/nope.pt", "--out", "{d}/b.csv"], "the file does not exist"),
    "corrupt checkpoint": (["train-students", "--teacher", "{d}/corrupt.pt", "--dataset", "digits",
                            "--normal-class", "0", "--out", "{d}/x.pt"], "is corrupt or not a ust checkpoint"),
    "wrong kind of checkpoint": (["evaluate", "--model", "{d}/teachers/teacher_33.pt", "--dataset", "digits",
                                  "--normal-class", "0"], "holds a 'teacher' checkpoint, but a 'student_teacher'"),
    "missing natural images": (["pretrain-teacher", "--patch-size", "17", "--images", "{d}/nowhere", "--out",
                                "{d}/t.pt"], "natural images not found"),
    "missing required option": (["evaluate", "--dataset", "digits", "--normal-class", "0"],
                                "the following arguments are required: --model"),
    "not a number": (["train-students", "--teacher", "x.pt", "--dataset", "digits", "--normal-class", "0",
                      "--iterations", "many", "--out", "x.pt"], "expected a whole number, got 'many'"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_gives_one_line_and_status_2(case, files):
    args, fact = BAD[case]
    code, out, err = run(*[a.format(d=files) for a in args])
    assert code == 2 and out == ""
    assert err.endswith("\n") and err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("python -m ust ") and ": error: " in err
    assert fact.format(d=files) in err


def test_unavailable_data_prints_its_message_on_one_line(files, tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "_try_download", lambda name, root: (None, "no internet (test)"))
    code, _, err = run("evaluate", "--model", files / "st.pt", "--dataset", "mnist", "--data-root", tmp_path,
                       "--normal-class", "0")
    assert code == 2 and err.count("\n") == 1
    assert "MNIST is not available here" in err and "no internet (test)" in err and "load_dataset('digits')" in err


def test_pretrained_teachers_missing_is_explained(files, monkeypatch):
    monkeypatch.delattr(ust, "pretrained_teacher", raising=False)
    monkeypatch.setitem(sys.modules, "ust.weights", None)  # import fails, as before the weights exist
    code, _, err = run("benchmark", "--dataset", files / "tiny.npz", "--classes", "0", "--scales", "65",
                       "--teachers", "pretrained:65", "--out", files / "b.csv")
    assert code == 2 and err.count("\n") == 1
    assert "ships no pretrained teachers" in err and "pretrain-teacher --patch-size 65" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_unavailable_device(files, tmp_path):
    code, _, err = run("train-students", "--teacher", files / "teachers" / "teacher_33.pt", "--dataset",
                       files / "tiny.npz", "--normal-class", "0", "--device", "cuda", "--out", tmp_path / "x.pt")
    assert code == 2 and err.count("\n") == 1 and "no CUDA GPU is available here" in err


def test_baselines_command(files, tmp_path):
    out = tmp_path / "baselines.csv"
    code, text, err = run("baselines", "--dataset", files / "tiny.npz", "--classes", "cat", "--methods", "knn_pixels",
                          "knn_teacher", "--teacher", files / "teachers" / "teacher_33.pt", "--out", out, *QUIET)
    assert code == 0, err
    # each class lights up its own block of pixels: raw-pixel k-NN separates them perfectly
    assert table_row(text, "0")[:3] == ["cat", "knn_pixels", 1.0]
    assert "mean AUROC knn_teacher" in text and out.is_file()
    code, _, err = run("baselines", "--dataset", files / "tiny.npz", "--classes", "horse", "--out", out, *QUIET)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "horse" in err


def test_benchmark_accepts_plain_pretrained(monkeypatch):
    from ust import cli

    monkeypatch.setattr(cli, "teacher_from_spec",
                        lambda spec, option: (ust.PatchNet(int(spec.split(":")[1]), out_dim=4), {}))
    monkeypatch.setattr(cli, "_pretrained_teacher",
                        lambda spec: (ust.PatchNet(int(spec.split(":")[1]), out_dim=4), {}))
    teachers, sources = cli._benchmark_teachers(["pretrained"], [17, 33])
    assert sources == {17: "pretrained:17", 33: "pretrained:33"}
    assert {p: t.patch_size for p, t in teachers.items()} == {17: 17, 33: 33}
