"""Anomaly scores: hand-computed values and invariants."""

import pytest
import torch

import ust


def hand_example():
    # M = 2 students, B = 1, d = 2, H = W = 1
    s1 = torch.tensor([1.0, 0.0]).reshape(1, 2, 1, 1)
    s2 = torch.tensor([3.0, 0.0]).reshape(1, 2, 1, 1)
    target = torch.tensor([1.0, 1.0]).reshape(1, 2, 1, 1)
    return torch.stack([s1, s2]), target


def test_error_and_variance_by_hand():
    preds, target = hand_example()
    # mean prediction (2, 0): e = (2 - 1)^2 + (0 - 1)^2 = 2
    assert ust.regression_error(preds, target).item() == pytest.approx(2.0)
    # paper form: (|s1|^2 + |s2|^2) / 2 - |mean|^2 = (1 + 9) / 2 - 4 = 1
    assert ust.predictive_variance(preds).item() == pytest.approx(1.0)
    assert ust.ensemble_mean(preds).flatten().tolist() == [2.0, 0.0]


def test_variance_equals_papers_form():
    torch.manual_seed(0)
    preds = torch.randn(4, 2, 8, 5, 6, dtype=torch.float64)
    paper = preds.square().sum(2).mean(0) - preds.mean(0).square().sum(1)
    assert torch.allclose(ust.predictive_variance(preds), paper, atol=1e-10)


def test_variance_non_negative_and_zero_when_students_agree():
    torch.manual_seed(0)
    preds = torch.randn(3, 2, 16, 7, 7) * 100 + 1e4  # large offsets provoke cancellation
    assert (ust.predictive_variance(preds) >= 0).all()
    same = torch.randn(1, 2, 16, 7, 7).expand(3, -1, -1, -1, -1)
    assert ust.predictive_variance(same).abs().max().item() <= 1e-10  # exact up to rounding of the mean
    assert torch.equal(ust.predictive_variance(preds[:1]), torch.zeros(2, 7, 7))


def test_shapes():
    preds = torch.randn(3, 2, 16, 7, 9)
    target = torch.randn(2, 16, 7, 9)
    assert ust.regression_error(preds, target).shape == (2, 7, 9)
    assert ust.predictive_variance(preds).shape == (2, 7, 9)


def test_normalization_and_combined_score_by_hand():
    errors = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    variances = torch.tensor([[[0.0, 0.0], [2.0, 2.0]]])
    norm = ust.ScoreNormalization.fit(errors, variances)
    # mean 2.5, unbiased std sqrt(5/3); mean 1, unbiased std sqrt(4/3)
    assert norm.error_mean == pytest.approx(2.5) and norm.error_std == pytest.approx((5 / 3) ** 0.5)
    assert norm.variance_mean == pytest.approx(1.0) and norm.variance_std == pytest.approx((4 / 3) ** 0.5)
    e, v = torch.tensor([[[6.0]]]), torch.tensor([[[3.0]]])
    e_t, v_t = (6 - 2.5) / (5 / 3) ** 0.5, (3 - 1) / (4 / 3) ** 0.5
    assert ust.anomaly_score(e, v, norm).item() == pytest.approx(e_t + v_t, rel=1e-6)
    assert ust.anomaly_score(e, v, norm, components="error").item() == pytest.approx(e_t, rel=1e-6)
    assert ust.anomaly_score(e, v, norm, components="variance").item() == pytest.approx(v_t, rel=1e-6)


def test_normalization_from_batches_equals_one_tensor():
    torch.manual_seed(0)
    e, v = torch.rand(6, 4, 4), torch.rand(6, 4, 4)
    a = ust.ScoreNormalization.fit([e[:2], e[2:]], [v[:5], v[5:]])
    b = ust.ScoreNormalization.fit(e, v)
    assert a.to_dict() == pytest.approx(b.to_dict())


def test_validation_scores_are_standardised():
    torch.manual_seed(0)
    e, v = torch.rand(10, 5, 5) * 7, torch.rand(10, 5, 5) * 0.1
    norm = ust.ScoreNormalization.fit(e, v)
    err = ust.anomaly_score(e, v, norm, components="error")
    assert err.mean().item() == pytest.approx(0.0, abs=1e-5)
    assert err.std().item() == pytest.approx(1.0, abs=1e-5)


def test_fusion():
    a = torch.rand(2, 4, 4)
    assert ust.fuse_scales([a]) is a  # one scale: the identity
    b = torch.rand(2, 4, 4)
    c = torch.rand(2, 4, 4)
    assert torch.allclose(ust.fuse_scales([a, b, c]), (a + b + c) / 3)
    with pytest.raises(ValueError, match="at least one"):
        ust.fuse_scales([])
    with pytest.raises(ValueError, match=r"scores\[1\] has shape"):
        ust.fuse_scales([a, torch.rand(2, 4, 5)])


def test_image_score():
    m = torch.tensor([[[1.0, 2.0], [3.0, 6.0]], [[0.0, 0.0], [0.0, 4.0]]])
    assert ust.image_score(m).tolist() == [3.0, 1.0]
    assert ust.image_score(m, "max").tolist() == [6.0, 4.0]
    with pytest.raises(ValueError, match="reduction must be one of"):
        ust.image_score(m, "median")
    with pytest.raises(ValueError, match=r"\(B, H, W\)"):
        ust.image_score(m[0])


def test_score_errors():
    with pytest.raises(ValueError, match=r"\(M, B, d, H, W\).*torch.stack"):
        ust.predictive_variance(torch.rand(2, 3, 4, 4))
    preds, target = hand_example()
    with pytest.raises(ValueError, match="mean prediction has shape"):
        ust.regression_error(preds, target[:, :1])
    norm = ust.ScoreNormalization(0.0, 1.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="components must be one of"):
        ust.anomaly_score(torch.rand(1, 2, 2), torch.rand(1, 2, 2), norm, components="sum")
    with pytest.raises(ValueError, match="at least two pixels"):
        ust.ScoreNormalization.fit(torch.rand(1, 1, 1), torch.rand(1, 1, 1))
