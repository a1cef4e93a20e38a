"""The one-class benchmark runner: rows, fusion, resumable CSV, settings JSON, summary."""

import csv
import json
import math

import numpy as np
import pytest
import torch

import ust
import ust.experiments as ex
from ust.checkpoints import weights_sha256
from ust.data import DatasetSplits, ImageArrays, one_class_split
from ust.metrics import image_auroc
from ust.model import MultiScaleStudentTeacher
from ust.training import train_students

FAST = dict(n_students=2, iterations=2, batch_size=4, progress=False, device="cpu")


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def _splits(n_train=12, n_test=4, size=8, name="tiny"):
    """Three classes of 8x8 gray images: a bright square in a class-specific corner, plus noise."""
    rng = np.random.default_rng(0)

    def part(n, what):
        images, labels = [], []
        for k in range(3):
            x = rng.integers(0, 40, size=(n, size, size, 1))
            r, c = [(0, 0), (0, size // 2), (size // 2, 0)][k]
            x[:, r:r + size // 2, c:c + size // 2] += 180
            images.append(x.astype(np.uint8))
            labels += [k] * n
        return ImageArrays(np.concatenate(images), np.array(labels), ("a", "b", "c"), name, f"{what} of {name}")

    return DatasetSplits(part(n_train, "train"), part(n_test, "test"), name)


def _teachers(*sizes):
    torch.manual_seed(0)
    return {p: ust.PatchNet(p, out_dim=8).eval() for p in sizes}


# --------------------------------------------------------------------------- classes and data

def test_parse_classes_ranges_lists_names():
    classes = ("airplane", "cat", "dog", "frog")
    assert ex.parse_classes("0-2", classes) == [0, 1, 2]
    assert ex.parse_classes(["3", "1,cat", "dog-frog"], classes) == [3, 1, 2]
    assert ex.parse_classes("all", classes) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="runs backwards; write it as 1-3"):
        ex.parse_classes("3-1", classes)
    with pytest.raises(ValueError, match="unknown class 'horse'.*3 'frog'"):
        ex.parse_classes("horse", classes)


def test_resolve_class_prefers_names_and_rejects_out_of_range():
    assert ex.resolve_class(("0", "1", "2"), "2") == 2
    assert ex.resolve_class(("x", "y"), "1") == 1
    assert ex.resolve_class(("x", "y"), 0) == 0
    with pytest.raises(ValueError, match=r"label 0\.\.1 or a name"):
        ex.resolve_class(("x", "y"), 2)


def test_load_splits_names_the_valid_datasets(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'svhn'.*mnist, cifar10, digits, mnist-or-digits"):
        ex.load_splits("svhn")
    with pytest.raises(ValueError, match="no arrays file"):
        ex.load_splits(str(tmp_path / "missing.npz"))
    path = tmp_path / "tiny.npz"
    s = _splits()
    np.savez(path, x_train=s.train.images, y_train=s.train.labels, x_test=s.test.images, y_test=s.test.labels)
    loaded = ex.load_splits(str(path))
    assert loaded.name == "tiny" and len(loaded.train) == 36 and len(loaded.test) == 12


# --------------------------------------------------------------------------- one class

def test_component_scores_equal_image_scores():
    splits = _splits()
    data = one_class_split(splits, 0, channels=3)
    model = train_students(_teachers(33)[33], data.train, **FAST).model
    model.calibrate(data.val)
    scores = ex.component_scores(model, data.test, batch_size=5)
    for c in ust.SCORE_COMPONENTS:
        assert torch.allclose(scores[c], model.image_scores(data.test, components=c), atol=1e-6)
    assert torch.allclose(scores["both"], scores["error"] + scores["variance"], atol=1e-5)


def test_run_one_class_rows_match_a_manual_run_and_the_fusion():
    splits, teachers = _splits(), _teachers(17, 33)
    rows = ex.run_one_class(splits, "b", teachers, seed=3, **FAST)
    assert [(r["scale"], r["components"]) for r in rows] == [
        (s, c) for s in ("17", "33", "fused") for c in ("both", "error", "variance")]
    first = rows[0]
    assert all(tuple(r) == ex.COLUMNS for r in rows)
    assert (first["dataset"], first["normal_class"], first["class_name"], first["seed"]) == ("tiny", 1, "b", 3)
    # 12 training images of class b: 1 held out (10 %), 11 for training; the whole test split (12).
    assert (first["n_train"], first["n_test"], first["test_subset"], first["image_size"]) == (11, 12, False, "8x8")
    assert (first["n_students"], first["iterations"], first["stand_in_for"]) == (2, 2, "")
    fused = [r for r in rows if r["scale"] == "fused"][0]
    assert fused["train_seconds"] == pytest.approx(rows[0]["train_seconds"] + rows[3]["train_seconds"])

    # The same run by hand (CPU training repeats exactly with the same seed).
    data = one_class_split(splits, 1, channels=3, seed=3)
    models = []
    for p in (17, 33):
        model = train_students(teachers[p], data.train, seed=3, **FAST).model
        model.calibrate(data.val)
        models.append(model)
    scores = {}
    for r in rows[:6]:
        model = models[(17, 33).index(int(r["scale"]))]
        scores[r["scale"], r["components"]] = model.image_scores(data.test, components=r["components"])
        assert r["auroc"] == pytest.approx(image_auroc(scores[r["scale"], r["components"]], data.test_labels), abs=1e-9)
    fused = MultiScaleStudentTeacher(models).image_scores(data.test)  # Eq. 13, the paper's score e+v
    assert torch.allclose(fused, (scores["17", "both"] + scores["33", "both"]) / 2, atol=1e-6)
    for r in rows[6:]:
        mean = (scores["17", r["components"]] + scores["33", r["components"]]) / 2
        assert r["auroc"] == pytest.approx(image_auroc(mean, data.test_labels), abs=1e-9)


def test_run_one_class_test_subset_is_stratified_and_independent_of_the_seed():
    splits, teachers = _splits(), _teachers(33)
    rows = [ex.run_one_class(splits, 0, teachers, seed=s, max_test=6, components=("both",), **FAST)[0]
            for s in (0, 1)]
    assert [(r["n_test"], r["test_subset"]) for r in rows] == [(6, True), (6, True)]
    subset, used = ex._test_subset(splits, 6, 0)
    assert used and np.bincount(subset.test.labels).tolist() == [2, 2, 2]
    assert "stratified subset of 6 images" in subset.test.description


def test_run_one_class_rejects_mislabelled_teachers():
    with pytest.raises(ValueError, match="key must be its patch size"):
        ex.run_one_class(_splits(), 0, {33: ust.PatchNet(17, out_dim=8)}, **FAST)
    with pytest.raises(ValueError, match="components must be"):
        ex.run_one_class(_splits(), 0, _teachers(17), components=("e+v",), **FAST)


# --------------------------------------------------------------------------- benchmark

def _counting(monkeypatch):
    calls = []
    real = ex.run_one_class

    def counted(splits, label, teachers, **kw):
        calls.append((label, kw["seed"], kw.get("max_test")))
        return real(splits, label, teachers, **kw)

    monkeypatch.setattr(ex, "run_one_class", counted)
    return calls


def test_run_benchmark_writes_each_pair_at_once_and_resumes(tmp_path, monkeypatch):
    calls = _counting(monkeypatch)
    out = tmp_path / "results" / "tiny.csv"
    seen = []

    def on_result(rows, resumed):
        with out.open(newline="") as handle:  # the file is complete after every pair
            reader = csv.DictReader(handle)
            assert tuple(reader.fieldnames) == ex.COLUMNS
            seen.append((len(list(reader)), len(rows), resumed))

    kw = dict(teachers=_teachers(33), **FAST)
    rows = ex.run_benchmark(_splits(), ["a", "c"], [33], [0, 1], out, subset_seeds={1: 6}, on_result=on_result,
                            components=("both", "error"), **kw)
    assert calls == [(0, 0, None), (0, 1, 6), (2, 0, None), (2, 1, 6)]
    assert seen == [(2, 2, False), (4, 2, False), (6, 2, False), (8, 2, False)]
    assert [(r["normal_class"], r["seed"], r["n_test"], r["test_subset"]) for r in rows[::2]] == [
        (0, 0, 12, False), (0, 1, 6, True), (2, 0, 12, False), (2, 1, 6, True)]
    assert not list(out.parent.glob(".*.tmp"))
    settings = json.loads(out.with_suffix(".json").read_text())
    assert settings["arguments"]["classes"] == [0, 2] and settings["arguments"]["subset_seeds"] == {"1": 6}
    assert settings["arguments"]["components"] == ["both", "error"] and settings["arguments"]["iterations"] == 2
    assert settings["ust_version"] == ust.__version__ and settings["torch_version"] == torch.__version__
    assert settings["device"] == "cpu" and settings["date"] and settings["earlier_runs"] == []
    assert settings["arguments"]["teachers"]["33"]["weights_sha256"] == weights_sha256(kw["teachers"][33].state_dict())

    # Resume: nothing runs again; the rows come back from the CSV with their types.
    seen.clear()
    again = ex.run_benchmark(_splits(), ["a", "c"], [33], [0, 1], out, subset_seeds={1: 6},
                             on_result=on_result, components=("both", "error"), **kw)
    assert len(calls) == 4 and seen == [(8, 2, True)] * 4
    assert [(r["scale"], r["components"], r["seed"], r["test_subset"]) for r in again] == \
        [(r["scale"], r["components"], r["seed"], r["test_subset"]) for r in rows]
    assert [r["auroc"] for r in again] == pytest.approx([r["auroc"] for r in rows], abs=1e-12)
    assert len(json.loads(out.with_suffix(".json").read_text())["earlier_runs"]) == 1

    # A new class runs alone; a component not in the CSV reruns a finished pair, replacing its rows.
    ex.run_benchmark(_splits(), [1, 2], [33], [0], out, components=("both", "error"), **kw)
    assert calls[4:] == [(1, 0, None)]
    ex.run_benchmark(_splits(), [1], [33], [0], out, components=("variance",), **kw)
    assert calls[5:] == [(1, 0, None)]
    ex.run_benchmark(_splits(), [1], [33], [0], out, resume=False, components=("both",), **kw)
    assert calls[6:] == [(1, 0, None)]
    stored = ex.read_rows(out)
    assert len(stored) == 8 + 1  # class 1 seed 0 now holds only its last run's row
    assert [(r["normal_class"], r["components"]) for r in stored[-1:]] == [(1, "both")]


def test_run_benchmark_keeps_finished_pairs_when_a_later_one_fails(tmp_path, monkeypatch):
    real = ex.run_one_class

    def failing(splits, label, teachers, **kw):
        if label == 1:
            raise FloatingPointError("the student loss became nan")
        return real(splits, label, teachers, **kw)

    monkeypatch.setattr(ex, "run_one_class", failing)
    out = tmp_path / "r.csv"
    with pytest.raises(FloatingPointError):
        ex.run_benchmark(_splits(), "0-1", [33], [0], out, teachers=lambda p: _teachers(p)[p], **FAST)
    rows = ex.read_rows(out)
    assert [(r["normal_class"], r["components"]) for r in rows] == [(0, "both"), (0, "error"), (0, "variance")]


def test_run_benchmark_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match=r"scales must be distinct patch sizes from \(17, 33, 65\); got \[20\]"):
        ex.run_benchmark(_splits(), [0], [20], [0], tmp_path / "r.csv", teachers={})
    with pytest.raises(ValueError, match="unknown arguments \\['epochs'\\]"):
        ex.run_benchmark(_splits(), [0], [17], [0], tmp_path / "r.csv", teachers={}, epochs=3)
    bad = tmp_path / "other.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="lacks the columns"):
        ex.run_benchmark(_splits(), [0], [17], [0], bad, teachers={})


# --------------------------------------------------------------------------- summary

def _row(cls, seed, auroc, scale="17", comp="both"):
    return {"dataset": "d", "normal_class": cls, "class_name": f"c{cls}", "seed": seed, "scale": scale,
            "components": comp, "auroc": auroc}


def test_summarize_hand_computed():
    rows = [_row(0, 0, 0.8), _row(0, 1, 1.0), _row(1, 0, 0.6), _row(1, 1, 0.7), _row(0, 0, 0.5, "fused")]
    out = ex.summarize(rows)
    assert [(r["normal_class"], r["scale"]) for r in out] == [(0, "17"), (1, "17"), (0, "fused"), ("mean", "17"),
                                                               ("mean", "fused")]
    c0, c1, f0, m17, mf = out
    assert (c0["auroc_mean"], c0["auroc_std"], c0["n_seeds"]) == (pytest.approx(0.9), pytest.approx(0.1414214), 2)
    assert (c1["auroc_mean"], c1["auroc_std"]) == (pytest.approx(0.65), pytest.approx(0.0707107))
    assert f0["auroc_mean"] == 0.5 and math.isnan(f0["auroc_std"])
    # Mean over classes: (0.9 + 0.65) / 2; per-seed class means 0.7 and 0.85 -> std 0.1060660.
    assert (m17["auroc_mean"], m17["auroc_std"]) == (pytest.approx(0.775), pytest.approx(0.1060660))
    assert m17["n_classes"] == 2
    assert (mf["auroc_mean"], mf["n_classes"], mf["n_seeds"]) == (0.5, 1, 1)


def test_summarize_uses_the_seeds_every_class_has_for_the_std():
    rows = [_row(0, 0, 0.8), _row(0, 1, 0.9), _row(1, 0, 0.6)]
    mean = ex.summarize(rows)[-1]
    # class means 0.85 and 0.6; only seed 0 is common -> one value, no std.
    assert mean["auroc_mean"] == pytest.approx(0.725) and mean["n_seeds"] == 1 and math.isnan(mean["auroc_std"])


def test_write_and_read_rows_round_trip(tmp_path):
    row = {"dataset": "digits", "normal_class": 3, "class_name": "3", "seed": 1, "scale": "fused",
           "components": "both", "auroc": 0.123456789, "n_train": 10, "n_test": 20, "test_subset": True,
           "train_seconds": 1.5, "score_seconds": 0.25, "image_size": "28x28", "n_students": 3, "iterations": 7,
           "stand_in_for": "mnist", "teacher": "pretrained:33:kc"}
    path = ex.write_rows(tmp_path / "x" / "r.csv", [row, {**row, "stand_in_for": None, "test_subset": False}])
    back = ex.read_rows(path)
    assert back[0] == row
    assert back[1]["stand_in_for"] is None and back[1]["test_subset"] is False


def test_hardware_description_names_what_decides_exact_repeats():
    """CPU model, vector capability and threads: runs repeat exactly only when all three match."""
    text = ex.hardware_description("cpu")
    assert text.startswith("cpu: ")
    assert f"({torch.backends.cpu.get_cpu_capability()})" in text
    assert f"{torch.get_num_threads()} torch threads" in text


def test_hardware_description_finds_the_cpu_model_or_falls_back(tmp_path, monkeypatch):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9B14\nflags\t: avx\n")
    assert ex._cpu_model(info) == "AMD EPYC 9B14"
    monkeypatch.setattr(ex.platform, "system", lambda: "Windows")
    assert ex._cpu_model(tmp_path / "missing") == ""                         # no /proc, not macOS: nothing
    monkeypatch.setattr(ex, "_cpu_model", lambda: "")
    monkeypatch.setattr(ex.platform, "processor", lambda: "Intel64 Family 6 Model 154")   # what Windows says
    assert ex.hardware_description("cpu").startswith("cpu: Intel64 Family 6 Model 154 (")


def test_synthetic_validation_auroc_is_high_for_a_detector_and_keeps_the_normalisation():
    """A 'model' whose score is the image's brightness sees bright synthetic anomalies on dark images."""
    from ust.experiments import synthetic_validation_auroc

    class Brightness:
        normalization = "kept"
        calibrated_on = None

        def calibrate(self, images, dense=False):
            self.calibrated_on = len(images)
            self.normalization = "changed"

        def image_scores(self, images, dense=False, components="both", reduction="mean"):
            self.reduction = reduction
            return images.mean((1, 2, 3))

    torch.manual_seed(0)
    model = Brightness()
    images = torch.rand(12, 3, 20, 20) * 0.1
    assert synthetic_validation_auroc(model, images, seed=0) == 1.0
    assert model.calibrated_on == 6 and model.normalization == "kept" and model.reduction == "mean"
    synthetic_validation_auroc(model, images, seed=0, reduction="max")
    assert model.reduction == "max"
    with pytest.raises(ValueError, match="at least 4 validation images"):
        synthetic_validation_auroc(model, images[:3])


def test_synthetic_validation_auroc_draws_at_native_size_then_resizes():
    """With image_size the defect is drawn on the native images and resized with them, not drawn after."""
    from ust.data import add_synthetic_anomalies, resize_images
    from ust.experiments import synthetic_validation_auroc

    class Recorder:
        normalization = None

        def calibrate(self, images, dense=False):
            self.calibrated = images

        def image_scores(self, images, dense=False, components="both", reduction="mean"):
            self.scored = images
            return images.mean((1, 2, 3))

    torch.manual_seed(0)
    images = torch.rand(12, 3, 20, 20) * 0.1
    model = Recorder()
    synthetic_validation_auroc(model, images, seed=3, image_size=40)
    order = torch.randperm(12, generator=torch.Generator().manual_seed(3))
    held = images[order[6:]]
    drawn_native = resize_images(add_synthetic_anomalies(held, seed=3)[0], 40)
    assert model.calibrated.shape == (6, 3, 40, 40)
    torch.testing.assert_close(model.scored, torch.cat([resize_images(held, 40), drawn_native]), rtol=0, atol=0)
    drawn_after = add_synthetic_anomalies(resize_images(held, 40), seed=3)[0]
    assert (drawn_after - drawn_native).abs().max() > 0.1                   # the two orders really differ


def test_synthetic_validation_auroc_with_quarter_turns_scores_the_turned_half():
    """kind='rotate': the anomalous half is the held-out half turned, then resized like the rest."""
    from ust.data import resize_images, rotate_quarter_turns
    from ust.experiments import synthetic_validation_auroc

    class LeftHeavy:
        """Scores the mass of the left column minus the right: turning moves the bright top row aside."""
        normalization = None

        def calibrate(self, images, dense=False):
            pass

        def image_scores(self, images, dense=False, components="both", reduction="mean"):
            self.scored = images
            return (images[..., 0] - images[..., -1]).abs().sum((1, 2))

    images = torch.zeros(10, 1, 6, 6)
    images[:, :, 0, :] = 1.0                                               # a bright top row: left == right
    model = LeftHeavy()
    assert synthetic_validation_auroc(model, images, kind="rotate", seed=2, image_size=12) == 1.0
    order = torch.randperm(10, generator=torch.Generator().manual_seed(2))
    held = images[order[5:]]
    expected = torch.cat([resize_images(held, 12), resize_images(rotate_quarter_turns(held, seed=2), 12)])
    torch.testing.assert_close(model.scored, expected, rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"kind must be one of .*'rotate'"):
        synthetic_validation_auroc(model, images, kind="scratch")


def test_checkpoint_aurocs_equal_the_separate_calls_for_each_reduction():
    """One call gives both validation AUROCs and the three test AUROCs, for the mean or the max of the map."""
    splits = _splits(n_train=60, n_test=10, size=12)
    data = one_class_split(splits, 2, channels=3, seed=1)
    model = train_students(_teachers(17)[17], data.train, seed=1, **FAST).model
    model.calibrate(data.val[:2])
    kept = model.normalization
    got = {r: ex.checkpoint_aurocs(model, data, seed=4, reduction=r) for r in ("mean", "max")}
    assert model.normalization is kept                                  # left as it was
    for reduction, aurocs in got.items():
        expected = {"val_auroc": ex.synthetic_validation_auroc(model, data.val, seed=4, reduction=reduction),
                    "val_auroc_rotate": ex.synthetic_validation_auroc(model, data.val, kind="rotate", seed=4,
                                                                      reduction=reduction)}
        model.calibrate(data.val)                                        # the test side: all validation images
        for name, c in (("auroc", "both"), ("auroc_error", "error"), ("auroc_variance", "variance")):
            scores = model.image_scores(data.test, components=c, reduction=reduction)
            expected[name] = image_auroc(scores, data.test_labels)
        model.normalization = kept
        assert aurocs == pytest.approx(expected, abs=1e-12), reduction
    assert got["mean"] != got["max"]                                    # the reduction reached the scores
    both = ex.checkpoint_aurocs_by_reduction(model, data, seed=4)        # one scoring, both reductions
    assert both == got                                                   # exactly: the same maps, reduced twice
    assert model.normalization is kept


def test_checkpoint_aurocs_validate_with_the_kinds_asked():
    """Each kind gives its own column, equal to synthetic_validation_auroc; the test side does not change."""
    splits = _splits(n_train=60, n_test=10, size=12)
    data = one_class_split(splits, 2, channels=3, seed=1)
    model = train_students(_teachers(17)[17], data.train, seed=1, **FAST).model
    model.calibrate(data.val[:2])
    got = ex.checkpoint_aurocs(model, data, seed=4, kinds=("splice", "swap", "stroke"))
    assert set(got) == {"val_auroc_splice", "val_auroc_swap", "val_auroc", "auroc", "auroc_error", "auroc_variance"}
    for kind in ("splice", "swap", "stroke"):
        assert got[ex.validation_column(kind)] == pytest.approx(
            ex.synthetic_validation_auroc(model, data.val, kind=kind, seed=4), abs=1e-12), kind
    default = ex.checkpoint_aurocs(model, data, seed=4)
    assert set(default) == {"val_auroc", "val_auroc_rotate", "auroc", "auroc_error", "auroc_variance"}
    assert {k: default[k] for k in got if k in default} == {k: got[k] for k in got if k in default}


def test_validation_aurocs_by_scale_equal_synthetic_validation_of_each_scale_and_the_fusion():
    """One calibration and one scoring per scale give the AUROCs of the separate calls, fused as Eq. 13 fuses."""
    splits = _splits(n_train=60, n_test=4, size=12)
    data = one_class_split(splits, 1, channels=3, seed=1)
    teachers = _teachers(17, 33)
    models = [train_students(teachers[p], data.train, seed=2, **FAST).model for p in (17, 33)]
    for m in models:
        m.calibrate(data.val[:2])
    kept = [m.normalization for m in models]
    kinds = ("stroke", "rotate", "splice", "swap")
    got = ex.validation_aurocs_by_scale(models, data.val, kinds=kinds, seed=4)
    assert list(got) == ["17", "33", "fused"]
    assert [m.normalization for m in models] == kept                     # left as it was
    for kind in kinds:
        column = ex.validation_column(kind)
        for name, model in (("17", models[0]), ("33", models[1]), ("fused", MultiScaleStudentTeacher(models))):
            assert got[name][column] == pytest.approx(
                ex.synthetic_validation_auroc(model, data.val, kind=kind, seed=4), abs=1e-12), (name, kind)
    assert got["17"] != got["33"] != got["fused"]                          # each scale's own scores
    single = ex.validation_aurocs_by_scale(models[1:], data.val, kinds=("stroke",), seed=4)
    assert single == {"33": {"val_auroc": got["33"]["val_auroc"]}}      # no fusion of one scale
    with pytest.raises(ValueError, match=r"one model per patch size; got patch sizes \[17, 17\]"):
        ex.validation_aurocs_by_scale([models[0], models[0]], data.val)
    with pytest.raises(ValueError, match=r"kind must be one of .*got 'tilt'"):
        ex.validation_aurocs_by_scale(models, data.val, kinds=("stroke", "tilt"))
    with pytest.raises(ValueError, match=r"at least one kind of anomaly, e.g. \('stroke', 'rotate'\)"):
        ex.validation_aurocs_by_scale(models, data.val, kinds=())


def test_validation_column_names():
    assert [ex.validation_column(k) for k in ("stroke", "rotate", "splice", "swap", "blob")] == [
        "val_auroc", "val_auroc_rotate", "val_auroc_splice", "val_auroc_swap", "val_auroc_blob"]
    with pytest.raises(ValueError, match=r"kind must be one of .*'swap'\); got 'tilt'"):
        ex.validation_column("tilt")


@pytest.mark.parametrize("reductions", [("median",), ("mean", "sum"), ()])
def test_checkpoint_aurocs_refuse_an_unknown_reduction_before_any_network_runs(monkeypatch, reductions):
    splits = _splits(n_train=20, n_test=4, size=12)
    data = one_class_split(splits, 2, channels=3, seed=1)
    model = train_students(_teachers(17)[17], data.train, seed=1, **FAST).model

    def no_network(*args, **kwargs):
        raise AssertionError("a network ran before the reduction was checked")

    monkeypatch.setattr(model, "error_and_variance", no_network)
    monkeypatch.setattr(model, "calibrate", no_network)
    with pytest.raises(ValueError, match=r"reduction must be one of \('mean', 'max'\)"):
        ex.checkpoint_aurocs_by_reduction(model, data, reductions=reductions)
    with pytest.raises(ValueError, match=r"kind must be one of .*got 'tilt'"):
        ex.checkpoint_aurocs_by_reduction(model, data, kinds=("stroke", "tilt"))
    if len(reductions) == 1:
        with pytest.raises(ValueError, match="reduction must be one of"):
            ex.checkpoint_aurocs(model, data, reduction=reductions[0])
        with pytest.raises(ValueError, match="reduction must be one of"):
            ex.synthetic_validation_auroc(model, data.val, reduction=reductions[0])


def test_scores_dir_reuses_finished_scales_and_fuses_from_saved_scores(tmp_path, monkeypatch):
    calls = []
    import ust.training

    original = ust.training.train_students

    def counting(teacher, *args, **kwargs):
        calls.append(teacher.patch_size)
        return original(teacher, *args, **kwargs)

    monkeypatch.setattr(ust.training, "train_students", counting)
    splits, teachers = _splits(), _teachers(17, 33)
    first = ex.run_one_class(splits, 0, {17: teachers[17]}, scores_dir=tmp_path, **FAST)
    assert calls == [17] and len(list(tmp_path.glob("*.npz"))) == 1
    trained = []
    both = ex.run_one_class(splits, 0, teachers, scores_dir=tmp_path, **FAST,
                            on_model=lambda p, model, data: trained.append((p, model, data)))
    assert calls == [17, 33]  # p=17 came from the saved scores
    # on_model hands over the calibrated students of the scale that trained, and only those
    assert [p for p, _, _ in trained] == [33]
    _, model, data = trained[0]
    assert next(model.parameters()).device.type == "cpu"
    again = image_auroc(ex.component_scores(model, data.test, ("both",))["both"], data.test_labels)
    assert again == [r["auroc"] for r in both if r["scale"] == "33" and r["components"] == "both"][0]
    assert [r["auroc"] for r in both if r["scale"] == "17"] == [r["auroc"] for r in first]
    fresh = ex.run_one_class(splits, 0, teachers, **FAST)  # no cache: everything again
    assert [r["auroc"] for r in fresh] == pytest.approx([r["auroc"] for r in both])
    changed = ex.run_one_class(splits, 0, {17: teachers[17]}, scores_dir=tmp_path, **{**FAST, "iterations": 3})
    assert calls[-1] == 17 and len(changed) == 3  # other settings: a new fingerprint, trained again


def test_baselines_rows_and_resume(tmp_path, monkeypatch):
    splits = _splits(n_train=12, n_test=4, size=16)
    teacher = _teachers(17)[17]
    out = tmp_path / "baselines.csv"
    rows = ex.run_baselines(splits, [0, 1], out, teacher=teacher, ae_epochs=1,
                            methods=("autoencoder", "knn_pixels", "knn_teacher"))
    assert [(r["normal_class"], r["method"]) for r in rows] == [
        (0, "autoencoder"), (0, "knn_pixels"), (0, "knn_teacher"),
        (1, "autoencoder"), (1, "knn_pixels"), (1, "knn_teacher")]
    assert all(0.0 <= r["auroc"] <= 1.0 for r in rows)
    # the bright square in a class-specific corner: raw-pixel k-NN separates the classes perfectly
    assert all(r["auroc"] == 1.0 for r in rows if r["method"] == "knn_pixels")
    with out.open() as handle:
        assert csv.DictReader(handle).fieldnames == list(ex.BASELINE_COLUMNS)
    calls = []
    with monkeypatch.context() as patched:
        patched.setattr(ex, "run_baselines_one_class", lambda *a, **kw: calls.append(a))
        again = ex.run_baselines(splits, [0, 1], out, teacher=teacher, ae_epochs=1,
                                 methods=("autoencoder", "knn_pixels", "knn_teacher"))
    assert calls == []  # read back from the CSV, not rerun
    assert [r["auroc"] for r in again] == pytest.approx([r["auroc"] for r in rows])
    with pytest.raises(ValueError, match="knn_teacher baseline needs teacher"):
        ex.run_baselines_one_class(splits, 0, methods=("knn_teacher",))
