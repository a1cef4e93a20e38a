"""Teacher normalisation, student loss and the student ensemble."""

import pytest
import torch

import ust


def test_channel_statistics_equal_concatenated_data():
    torch.manual_seed(0)
    batches = [torch.randn(2, 4, 3, 5) * 3 + 1, torch.randn(1, 4, 6, 2), torch.randn(3, 4, 1, 1) - 2]
    stats = ust.ChannelStatistics()
    for b in batches:
        stats.update(b)
    rows = torch.cat([b.permute(0, 2, 3, 1).reshape(-1, 4) for b in batches]).double()
    assert stats.count == rows.shape[0]
    assert torch.allclose(stats.mean, rows.mean(0), atol=1e-12)
    assert torch.allclose(stats.std, rows.std(0), atol=1e-12)


def test_channel_statistics_errors():
    with pytest.raises(ValueError, match="at least two descriptors"):
        _ = ust.ChannelStatistics().std
    stats = ust.ChannelStatistics().update(torch.randn(2, 4, 2, 2))
    with pytest.raises(ValueError, match="3 channels, earlier batches had 4"):
        stats.update(torch.randn(2, 3, 2, 2))


def test_normalize_by_hand():
    y = torch.tensor([[[[1.0, 3.0]], [[10.0, 20.0]]]])  # (1, 2, 1, 2)
    out = ust.normalize_descriptors(y, mean=torch.tensor([2.0, 10.0]), std=torch.tensor([1.0, 5.0]))
    assert torch.allclose(out, torch.tensor([[[[-1.0, 1.0]], [[0.0, 2.0]]]]))


def test_normalize_shape_error():
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        ust.normalize_descriptors(torch.zeros(1, 2, 3, 3), torch.zeros(3), torch.ones(3))


def test_student_loss_by_hand():
    student = torch.zeros(1, 2, 1, 2)
    target = torch.tensor([[[[1.0, 2.0]], [[2.0, 0.0]]]])
    # pixel 1: 1 + 4 = 5, pixel 2: 4 + 0 = 4; mean over the w*h = 2 positions: 4.5
    assert ust.student_regression_loss(student, target).item() == pytest.approx(4.5)


def test_student_loss_averages_over_batch_and_positions():
    student = torch.zeros(2, 1, 2, 2)
    target = torch.ones(2, 1, 2, 2)
    target[1] = 3.0
    assert ust.student_regression_loss(student, target).item() == pytest.approx((1 + 9) / 2)


def test_student_loss_shape_error():
    with pytest.raises(ValueError, match="student has shape"):
        ust.student_regression_loss(torch.zeros(1, 2, 3, 3), torch.zeros(1, 2, 3, 4))


def test_students_are_independent_and_reproducible():
    a = ust.make_students(17, 3, seed=5)
    b = ust.make_students(17, 3, seed=5)
    assert len(a) == 3
    w = [s.features[0].weight for s in a]
    assert not torch.equal(w[0], w[1]) and not torch.equal(w[1], w[2])
    assert all(torch.equal(x.features[0].weight, y.features[0].weight) for x, y in zip(a, b))
    assert a[0].patch_size == 17 and a[0].out_dim == 128


def test_make_students_does_not_consume_global_rng():
    torch.manual_seed(0)
    expected = torch.rand(1)
    torch.manual_seed(0)
    ust.make_students(17, 2)
    assert torch.equal(torch.rand(1), expected)


def test_make_students_error():
    with pytest.raises(ValueError, match="at least 1"):
        ust.make_students(17, 0)
