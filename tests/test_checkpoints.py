"""Checkpoints: round trips, atomic writes, corruption and mismatches."""

import pytest
import torch

import ust
from ust.checkpoints import (
    CheckpointError,
    load_checkpoint,
    load_student_teacher,
    load_teacher,
    save_checkpoint,
    save_student_teacher,
    save_teacher,
    weights_sha256,
)
from ust.model import StudentTeacher


def _model(p=17, m=2):
    torch.manual_seed(0)
    teacher = ust.PatchNet(p, out_dim=8)
    students = ust.make_students(p, m, out_dim=8)
    model = StudentTeacher(teacher, students, torch.randn(8), torch.rand(8) + 0.5)
    model.normalization = ust.ScoreNormalization(1.0, 2.0, 3.0, 4.0)
    return model


def test_teacher_round_trip(tmp_path):
    teacher = ust.PatchNet(33, out_dim=16)
    path = save_teacher(tmp_path / "t.pt", teacher, {"data": "unit test"})
    loaded, meta = load_teacher(path, patch_size=33)
    assert meta["data"] == "unit test" and meta["patch_size"] == 33 and meta["ust_version"] == ust.__version__
    x = torch.rand(1, 3, 33, 33)
    assert torch.equal(loaded(x), teacher.eval()(x))


def test_half_precision_teacher(tmp_path):
    teacher = ust.PatchNet(17, out_dim=8)
    loaded, _ = load_teacher(save_teacher(tmp_path / "t.pt", teacher, half=True))
    assert loaded.features[0].weight.dtype == torch.float32
    assert torch.allclose(loaded.features[0].weight, teacher.features[0].weight, atol=1e-3)


def test_student_teacher_round_trip(tmp_path):
    model = _model()
    loaded, meta = load_student_teacher(save_student_teacher(tmp_path / "st.pt", model), patch_size=17)
    assert meta["n_students"] == 2 and loaded.normalization == model.normalization
    x = torch.rand(2, 3, 9, 9)
    assert torch.allclose(loaded.score_maps(x), model.eval().score_maps(x))
    assert torch.equal(loaded.mean, model.mean)


def test_sha256_depends_on_every_weight():
    state = ust.PatchNet(17, out_dim=4).state_dict()
    before = weights_sha256(state)
    state["features.0.bias"][0] += 1e-3
    assert weights_sha256(state) != before


def test_corrupt_file(tmp_path):
    path = save_teacher(tmp_path / "t.pt", ust.PatchNet(17, out_dim=4))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or not a ust checkpoint"):
        load_teacher(path)


def test_tampered_weights_fail_the_hash(tmp_path):
    path = save_teacher(tmp_path / "t.pt", ust.PatchNet(17, out_dim=4))
    payload = torch.load(path, weights_only=True)
    payload["state_dict"]["features.0.bias"] += 1.0
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_teacher(path)


def test_mismatches(tmp_path):
    path = save_teacher(tmp_path / "t.pt", ust.PatchNet(33, out_dim=4))
    with pytest.raises(CheckpointError, match="patch_size=33, but patch_size=65 was asked for"):
        load_teacher(path, patch_size=65)
    with pytest.raises(CheckpointError, match="holds a 'teacher' checkpoint, but a 'student_teacher'"):
        load_student_teacher(path)
    torch.save({"something": torch.zeros(1)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a ust checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "missing.pt")


def test_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "c.pt", "teacher", {"w": torch.zeros(2)}, {"v": 1})
    original = path.read_bytes()

    def broken_save(obj, handle):
        handle.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, "teacher", {"w": torch.ones(2)}, {"v": 2})
    assert path.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"]  # no temporary file left
