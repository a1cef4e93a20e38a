"""The shipped teachers: they load offline, match their manifest, and refuse tampered files."""

import shutil

import pytest
import torch

import ust
from ust import weights
from ust.checkpoints import CheckpointError, save_teacher

SHIPPED = ust.available_teachers()


@pytest.mark.skipif(not SHIPPED, reason="no teacher weights in ust/weights yet")
@pytest.mark.parametrize("patch_size,variant", SHIPPED)
def test_shipped_teachers_load_and_describe_patches(patch_size, variant):
    teacher = ust.pretrained_teacher(patch_size, variant)
    assert teacher.patch_size == patch_size and teacher.metadata["patch_size"] == patch_size
    assert teacher.metadata["settings"]["backbone"] == "efficientnet_lite0"
    assert teacher.metadata["settings"]["lambda_m"] == (1.0 if variant == "kmc" else 0.0)   # the variant's L_m
    with torch.no_grad():
        d = teacher.describe(torch.rand(4, 3, patch_size, patch_size))
    assert d.shape == (4, 128) and torch.isfinite(d).all()
    assert d.std(0).mean() > 0  # not a collapsed teacher


def test_shipped_weights_are_small():
    total = sum(p.stat().st_size for p in weights.WEIGHTS_DIR.glob("*.pt"))
    assert total < 50e6


def _fake_weights_dir(tmp_path, monkeypatch):
    save_teacher(tmp_path / "teacher_p17_kc.pt", ust.PatchNet(17), {"settings": {"backbone": "none"}}, half=True)
    monkeypatch.setattr(weights, "WEIGHTS_DIR", tmp_path)
    weights._manifest.cache_clear()
    weights.write_manifest(tmp_path)
    return tmp_path


def test_manifest_round_trip(tmp_path, monkeypatch):
    _fake_weights_dir(tmp_path, monkeypatch)
    assert weights.available_teachers() == [(17, "kc")]
    assert weights.pretrained_teacher(17).patch_size == 17
    weights._manifest.cache_clear()


def test_tampered_file_is_refused(tmp_path, monkeypatch):
    folder = _fake_weights_dir(tmp_path, monkeypatch)
    shutil.copy(folder / "teacher_p17_kc.pt", folder / "copy.pt")
    save_teacher(folder / "teacher_p17_kc.pt", ust.PatchNet(17), {}, half=True)  # replaced after the manifest
    with pytest.raises(CheckpointError, match="does not match the SHA-256"):
        weights.pretrained_teacher(17)
    weights._manifest.cache_clear()


def test_missing_and_bad_requests(tmp_path, monkeypatch):
    _fake_weights_dir(tmp_path, monkeypatch)
    with pytest.raises(CheckpointError, match="no shipped teacher for p=33.*pretrain-teacher"):
        weights.pretrained_teacher(33)
    with pytest.raises(ValueError, match="variant must be one of"):
        weights.pretrained_teacher(17, "fancy")
    with pytest.raises(ValueError, match="patch_size must be one of"):
        weights.pretrained_teacher(31)
    weights._manifest.cache_clear()
