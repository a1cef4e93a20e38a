"""StudentTeacher inference: lattice and dense maps agree, calibration, fusion."""

import pytest
import torch

import ust
from ust.model import MultiScaleStudentTeacher, StudentTeacher


def _model(p, seed=0):
    torch.manual_seed(seed)
    teacher = ust.PatchNet(p, out_dim=8)
    return StudentTeacher(teacher, ust.make_students(p, 3, out_dim=8, seed=seed), torch.randn(8) * 0.1,
                          torch.rand(8) + 0.5).eval()


def test_error_and_variance_match_the_score_functions():
    model = _model(17)
    x = torch.rand(2, 3, 6, 7)
    e, v = model.error_and_variance(x)
    preds = torch.stack([ust.DensePatchNet(s)(x) for s in model.students]).detach()
    target = ust.normalize_descriptors(ust.DensePatchNet(model.teacher)(x), model.mean, model.std).detach()
    assert torch.allclose(e, ust.regression_error(preds, target), atol=1e-5)
    assert torch.allclose(v, ust.predictive_variance(preds), atol=1e-5)
    assert (v >= 0).all() and e.shape == (2, 6, 7)


def test_regression_losses_are_eq8_per_student_with_gradients_to_the_students_only():
    model = _model(33)
    x = torch.rand(2, 3, 9, 10)
    losses = model.regression_losses(x, dense=False, offset=(1, 3))
    target = ust.normalize_descriptors(ust.DensePatchNet(model.teacher)(x), model.mean, model.std)[:, :, 1::4, 3::4]
    by_hand = [(ust.DensePatchNet(s)(x)[:, :, 1::4, 3::4] - target).square().sum(1).mean() for s in model.students]
    assert losses.shape == (3,) and torch.allclose(losses, torch.stack(by_hand).detach(), rtol=1e-5)
    losses.sum().backward()
    assert all(w.grad is not None for s in model.students for w in s.parameters())
    assert all(w.grad is None for w in model.teacher.parameters())
    dense_target = ust.normalize_descriptors(ust.DensePatchNet(model.teacher)(x), model.mean, model.std)
    dense = [ust.student_regression_loss(ust.DensePatchNet(s)(x), dense_target) for s in model.students]
    assert torch.allclose(model.regression_losses(x, dense=True), torch.stack(dense).detach(), rtol=1e-5)


@pytest.mark.parametrize("shape, offset, message", [((2, 1, 9, 10), (0, 0), "expects 3"),
                                                    ((3, 9, 10), (0, 0), "must be 4-D"),
                                                    ((2, 3, 9, 10), (4, 0), "offset must be")])
def test_regression_losses_refuse_bad_input_with_the_fix(shape, offset, message):
    with pytest.raises(ValueError, match=message):
        _model(33).regression_losses(torch.rand(shape), offset=offset)


@pytest.mark.parametrize("p", [33, 65])
def test_lattice_maps_are_the_dense_maps_subsampled(p):
    model = _model(p)
    x = torch.rand(2, 3, 20, 17)
    e_dense, v_dense = model.error_and_variance(x, dense=True)
    e_lat, v_lat = model.error_and_variance(x, dense=False)
    s = model.stride
    assert torch.allclose(e_lat, e_dense[:, ::s, ::s], atol=1e-4)
    assert torch.allclose(v_lat, v_dense[:, ::s, ::s], atol=1e-4)


def test_calibration_standardises_validation_scores():
    model = _model(17)
    val = torch.rand(4, 3, 8, 8)
    norm = model.calibrate(val, dense=True)
    maps = model.score_maps(val, components="error")
    assert maps.mean().item() == pytest.approx(0.0, abs=1e-4)
    assert maps.std().item() == pytest.approx(1.0, abs=1e-3)
    assert norm is model.normalization


def test_uncalibrated_model_says_what_to_do():
    with pytest.raises(ValueError, match="calibrate"):
        _model(17).score_maps(torch.rand(1, 3, 5, 5))


def test_image_scores_batched_equal_unbatched():
    model = _model(33)
    x = torch.rand(5, 3, 12, 12)
    model.calibrate(x)
    a = model.image_scores(x, batch_size=2)
    b = ust.image_score(model.score_maps(x, dense=False))
    assert torch.allclose(a, b, atol=1e-5)


def test_multiscale_fusion_is_the_mean_of_the_scales():
    models = [_model(17, seed=1), _model(33, seed=2)]
    x = torch.rand(2, 3, 9, 9)
    for m in models:
        m.calibrate(x, dense=True)
    fused = MultiScaleStudentTeacher(models)
    expected = (models[0].score_maps(x) + models[1].score_maps(x)) / 2
    assert torch.allclose(fused.score_maps(x), expected, atol=1e-5)
    dense_scores = fused.image_scores(x, dense=True)
    assert torch.allclose(dense_scores, expected.mean((1, 2)), atol=1e-5)
    lattice = fused.image_scores(x, dense=False)
    assert torch.allclose(lattice, (models[0].image_scores(x) + models[1].image_scores(x)) / 2, atol=1e-5)
    with pytest.raises(ValueError, match="once"):
        MultiScaleStudentTeacher([models[0], models[0]])


def test_students_must_match_the_teacher():
    with pytest.raises(ValueError, match="students need the teacher's architecture"):
        StudentTeacher(ust.PatchNet(17), ust.make_students(33, 1), torch.zeros(128), torch.ones(128))
