"""Training loops: exact CPU repeatability, learning, and an end-to-end AUROC floor on real digits."""

import numpy as np
import pytest
import torch

import ust
from ust.backbones import load_backbone
from ust.data import load_dataset, one_class_split
from ust.data.patches import PatchSampler
from ust.metrics import image_auroc
from ust.training import pretrain_teacher, teacher_statistics, train_students


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def backbone():
    return load_backbone("efficientnet_lite0")


def _sampler(digits, p, seed=0):
    return PatchSampler(np.repeat(digits.train.images, 3, axis=-1), p, seed=seed)


def test_pretraining_repeats_exactly(digits, backbone):
    runs = [pretrain_teacher(_sampler(digits, 17), backbone, out_dim=16, iterations=6, batch_size=8,
                             reference_patches=256, progress=False) for _ in range(2)]
    assert runs[0].history == runs[1].history
    for a, b in zip(runs[0].teacher.parameters(), runs[1].teacher.parameters()):
        assert torch.equal(a, b)
    assert set(runs[0].final_losses()) == {"total", "distillation", "compactness"}
    assert runs[0].settings["lr_schedule"] == "cosine" and runs[0].decoder.linear.out_features == 1280


def test_pretraining_with_metric_learning(digits, backbone):
    run = pretrain_teacher(_sampler(digits, 17), backbone, out_dim=8, iterations=3, batch_size=4, lambda_m=1.0,
                           reference_patches=256,
                           progress=False)
    assert len(run.history["metric"]) == 3 and run.settings["lambda_m"] == 1.0


def test_pretraining_errors(digits):
    with pytest.raises(ValueError, match="needs a pretrained backbone"):
        pretrain_teacher(_sampler(digits, 17), None, iterations=1)
    with pytest.raises(ValueError, match="batch_size must be at least 2"):
        pretrain_teacher(_sampler(digits, 17), None, lambda_k=0, batch_size=1, iterations=1)


def test_teacher_statistics_lattice_estimates_dense(digits):
    torch.manual_seed(0)
    teacher = ust.PatchNet(33, out_dim=8)
    images = one_class_split(digits, 0, channels=3).train[:20]
    mean_d, std_d = teacher_statistics(teacher, images, dense=True)
    mean_l, std_l = teacher_statistics(teacher, images, dense=False, batch_size=2)
    assert torch.allclose(mean_l, mean_d, rtol=0.1, atol=0.02 * std_d.mean().item())
    assert torch.allclose(std_l, std_d, rtol=0.15)


def test_students_repeat_exactly_and_learn(digits):
    torch.manual_seed(0)
    teacher = ust.PatchNet(33, out_dim=16)
    images = one_class_split(digits, 1, channels=3).train[:48]
    runs = [train_students(teacher, images, n_students=2, iterations=12, batch_size=8, lr=1e-3, progress=False)
            for _ in range(2)]
    assert runs[0].history == runs[1].history
    loss = runs[0].history["loss"]
    assert np.mean(loss[-3:]) < 0.7 * np.mean(loss[:3])
    assert len(runs[0].history["per_student"]) == 2
    assert runs[0].history["per_student"][0] != runs[0].history["per_student"][1]  # independent students


def test_student_cosine_schedule_starts_at_lr_and_then_decays(digits):
    """The first step of both schedules uses the full ``lr``: the losses agree until the second update shows."""
    teacher = ust.PatchNet(33, out_dim=8)
    images = one_class_split(digits, 3, channels=3).train[:24]
    runs = {s: train_students(teacher, images, n_students=1, iterations=3, batch_size=8, lr=1e-2, lr_schedule=s,
                              progress=False) for s in ("constant", "cosine")}
    constant, cosine = (runs[s].history["loss"] for s in ("constant", "cosine"))
    assert constant[:2] == cosine[:2]          # losses before and after the first update (lr in both)
    assert constant[2] != cosine[2]            # the second update: lr against lr * (1 + cos(pi / 3)) / 2
    assert runs["cosine"].settings["lr_schedule"] == "cosine"


def test_students_errors(digits):
    teacher = ust.PatchNet(33, out_dim=8)
    with pytest.raises(ValueError, match="1 channels but the network expects 3"):
        train_students(teacher, torch.rand(4, 1, 28, 28), iterations=1, progress=False)
    with pytest.raises(ValueError, match="at least 1"):
        train_students(teacher, torch.rand(4, 3, 28, 28), iterations=0, progress=False)
    with pytest.raises(ValueError, match="unknown lr_schedule 'linear'; use one of 'constant', 'cosine'"):
        train_students(teacher, torch.rand(4, 3, 28, 28), iterations=1, lr_schedule="linear", progress=False)


def test_end_to_end_digits_auroc(digits, backbone):
    """A tiny teacher and students on a few hundred real digits, a few iterations, beat chance clearly."""
    teacher = pretrain_teacher(_sampler(digits, 33), backbone, out_dim=32, iterations=20, batch_size=16,
                               reference_patches=256, progress=False).teacher
    split = one_class_split(digits, 0, channels=3, max_test=300)
    run = train_students(teacher, split.train, n_students=2, iterations=30, batch_size=8, lr=1e-3, progress=False)
    run.model.calibrate(split.val)
    auroc = image_auroc(run.model.image_scores(split.test), split.test_labels)
    # Measured on this 2-core CPU: 0.898 (normal class 0; classes 1, 2, 3 gave 0.69, 0.66, 0.96).
    # Chance is 0.5; the floor leaves a margin for other CPUs' floating-point order.
    assert auroc >= 0.80, auroc


def test_student_callback_sees_the_model_during_training(digits):
    teacher = ust.PatchNet(33, out_dim=8)
    images = one_class_split(digits, 2, channels=3).train[:16]
    seen = []
    train_students(teacher, images, n_students=1, iterations=6, batch_size=4, progress=False,
                   callback=lambda step, model: seen.append((step, model.n_students)), callback_every=2)
    assert seen == [(2, 1), (4, 1), (6, 1)]


# --- distillation_capacity: how much of P a teacher carries ---------------------------------------------------

def test_distillation_capacity_is_one_for_features_the_teacher_determines(digits):
    teacher = ust.PatchNet(17, out_dim=8).eval()
    mixing = torch.randn(8, 20, generator=torch.Generator().manual_seed(0))

    def backbone(patches):                      # features that are an affine map of the teacher's descriptors
        return teacher.describe(patches) @ mixing + 3.0

    result = ust.training.distillation_capacity(teacher, backbone, _sampler(digits, 17, seed=5), n_patches=128)
    assert result["explained"] == pytest.approx(1.0, abs=1e-9) and result["ceiling"] == pytest.approx(1.0, abs=1e-9)
    assert result["total_variance"] == pytest.approx(20.0, rel=0.2)    # standardised on the other half


def test_distillation_capacity_leaves_the_teacher_in_its_mode(digits):
    teacher = ust.PatchNet(17, out_dim=8).train()
    ust.training.distillation_capacity(teacher, lambda patches: patches.mean((2, 3)), _sampler(digits, 17, seed=5),
                                       n_patches=128)
    assert teacher.training


def test_feature_standardization_uses_one_overall_scale():
    features = torch.tensor([[0.0, 10.0], [2.0, 10.0], [4.0, 16.0], [6.0, 16.0]])
    mean, scale = ust.training._feature_standardization(features)
    # deviations (-3, -3), (-1, -3), (1, 3), (3, 3): mean square (9+9+1+9+1+9+9+9)/8 = 7
    assert mean.tolist() == [3.0, 13.0] and scale.item() == pytest.approx(7 ** 0.5)
    constant = torch.ones(3, 2)                 # no spread: the scale is clamped, no division by 0
    assert ust.training._feature_standardization(constant)[1].item() == pytest.approx(1e-6)


def test_distillation_capacity_of_the_shipped_teacher(digits, backbone):
    teacher = ust.pretrained_teacher(17)
    result = ust.training.distillation_capacity(teacher, backbone, _sampler(digits, 17, seed=5), n_patches=2048)
    assert result["floor"] == pytest.approx((1 - result["ceiling"]) * result["total_variance"])
    assert result["refit_loss"] == pytest.approx((1 - result["explained"]) * result["total_variance"])
    # a teacher carries part of P's features, never more than 128 channels allow on the evaluated patches
    # (measured: 0.38 of the variance; the embedded digits' patches span so few directions that the ceiling is 1)
    assert 0.2 < result["explained"] < result["ceiling"] <= 1.0


def test_distillation_capacity_errors(digits):
    teacher = ust.PatchNet(17, out_dim=8)
    with pytest.raises(ValueError, match="patch_size=17"):
        ust.training.distillation_capacity(teacher, None, _sampler(digits, 33), n_patches=64)
    with pytest.raises(ValueError, match="at least 16 d = 128"):
        ust.training.distillation_capacity(teacher, None, _sampler(digits, 17), n_patches=64)
