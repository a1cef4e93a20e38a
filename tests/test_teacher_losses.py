"""Teacher losses against values computed by hand."""

import numpy as np
import pytest
import torch

import ust


def test_knowledge_distillation_by_hand():
    decoded = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    target = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    # ||(1,2)||^2 = 5 and ||(2,3)||^2 = 13, mean 9
    assert ust.knowledge_distillation_loss(decoded, target).item() == pytest.approx(9.0)


def test_knowledge_distillation_shape_error():
    with pytest.raises(ValueError, match="decoded has shape"):
        ust.knowledge_distillation_loss(torch.zeros(2, 3), torch.zeros(2, 4))


def test_distillation_decoder_maps_to_feature_size():
    decoder = ust.DistillationDecoder(128, 512)
    assert decoder(torch.rand(5, 128, 1, 1)).shape == (5, 512)


def test_metric_learning_by_hand():
    anchor = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    positive = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    negative = torch.tensor([[0.0, 2.0], [0.0, 1.5]])
    # triplet 1: d+ = 1, d(a,n) = 4, d(p,n) = 5 -> d- = 4, max(0, 1 + 1 - 4) = 0
    # triplet 2: d+ = 1, d(a,n) = 2.25, d(p,n) = 0.25 -> d- = 0.25 (the harder one),
    #            max(0, 1 + 1 - 0.25) = 1.75
    loss = ust.metric_learning_loss(anchor, positive, negative, margin=1.0)
    assert loss.item() == pytest.approx((0.0 + 1.75) / 2)


def test_metric_learning_uses_positive_negative_distance():
    """With only the anchor-negative distance the second triplet would give 0."""
    anchor = torch.tensor([[0.0, 0.0]])
    positive = torch.tensor([[0.0, 1.0]])
    negative = torch.tensor([[0.0, 1.5]])
    assert ust.metric_learning_loss(anchor, positive, negative, margin=0.0).item() == pytest.approx(0.75)


def test_metric_learning_errors():
    with pytest.raises(ValueError, match="anchor has shape"):
        ust.metric_learning_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="margin must be >= 0"):
        ust.metric_learning_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 3), margin=-1)


def test_correlation_matrix_by_hand():
    a = [1.0, 2.0, 3.0, 4.0]
    b = [1.0, 3.0, 2.0, 4.0]
    # centred: a = (-1.5, -.5, .5, 1.5), b = (-1.5, .5, -.5, 1.5); a.b = 4, |a|^2 = |b|^2 = 5 -> 0.8
    corr = ust.correlation_matrix(torch.tensor([a, b]).T)
    assert corr.shape == (2, 2)
    assert torch.allclose(corr, torch.tensor([[1.0, 0.8], [0.8, 1.0]]), atol=1e-6)


def test_correlation_matrix_matches_numpy():
    x = torch.randn(50, 6, dtype=torch.float64)
    assert np.allclose(ust.correlation_matrix(x).numpy(), np.corrcoef(x.numpy(), rowvar=False), atol=1e-7)


def test_compactness_by_hand():
    a = [1.0, 2.0, 3.0, 4.0]
    b = [1.0, 3.0, 2.0, 4.0]     # corr(a, b) = 0.8
    c = [4.0, 3.0, 2.0, 1.0]     # corr(a, c) = -1, corr(b, c) = -0.8
    x = torch.tensor([a, b, c]).T  # 4 descriptors of dimension 3
    # off-diagonal entries, each twice: 0.8, -1, -0.8
    assert ust.descriptor_compactness_loss(x).item() == pytest.approx(2 * (0.8 + 1 + 0.8), abs=1e-5)
    assert ust.descriptor_compactness_loss(x, penalty="square").item() == pytest.approx(2 * (0.64 + 1 + 0.64),
                                                                                        abs=1e-5)
    assert ust.descriptor_compactness_loss(x, penalty="signed").item() == pytest.approx(2 * (0.8 - 1 - 0.8),
                                                                                     abs=1e-5)


def test_compactness_is_over_channels_not_batch():
    """The correlation matrix is d x d whatever the batch size."""
    x = torch.randn(10, 3)
    assert ust.correlation_matrix(x).shape == (3, 3)
    # uncorrelated channels give (close to) zero; duplicated channels give 2 per pair
    independent = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
    assert ust.descriptor_compactness_loss(independent).item() == pytest.approx(0.0, abs=1e-6)
    duplicated = torch.cat([x[:, :1], x[:, :1]], 1)
    assert ust.descriptor_compactness_loss(duplicated).item() == pytest.approx(2.0, abs=1e-5)


def test_compactness_accepts_patchnet_output_and_dense_maps():
    x = torch.randn(8, 4)
    as_patches = x[:, :, None, None]
    assert ust.descriptor_compactness_loss(as_patches).item() == pytest.approx(
        ust.descriptor_compactness_loss(x).item(), abs=1e-6)
    dense = torch.randn(2, 4, 3, 5)
    rows = dense.permute(0, 2, 3, 1).reshape(-1, 4)
    assert ust.descriptor_compactness_loss(dense).item() == pytest.approx(
        ust.descriptor_compactness_loss(rows).item(), abs=1e-6)


def test_compactness_needs_two_descriptors():
    with pytest.raises(ValueError, match="at least 2 descriptors"):
        ust.descriptor_compactness_loss(torch.randn(1, 4))


def test_teacher_loss_weighting():
    k, m, c = torch.tensor(2.0), torch.tensor(3.0), torch.tensor(5.0)
    assert ust.teacher_loss(distillation=k, metric=m, compactness=c,
                            lambda_k=1.0, lambda_m=0.5, lambda_c=0.1).item() == pytest.approx(2 + 1.5 + 0.5)
    # a term that was not computed, or has weight 0, is left out
    assert ust.teacher_loss(distillation=k, compactness=c).item() == pytest.approx(7.0)
    assert ust.teacher_loss(distillation=k, metric=m, lambda_m=0).item() == pytest.approx(2.0)


def test_teacher_loss_errors():
    with pytest.raises(ValueError, match="at least one term"):
        ust.teacher_loss()
    with pytest.raises(ValueError, match="weights must be >= 0"):
        ust.teacher_loss(distillation=torch.tensor(1.0), lambda_k=-1)


# --- distillation_floor and refit_distillation_loss: judging a trained teacher --------------------------------

def test_distillation_floor_by_hand():
    # two orthogonal directions with variances 0.5 and 0.125 (covariance divides by N = 4)
    features = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 0.5], [0.0, -0.5]]) + torch.tensor([3.0, -2.0])
    assert ust.distillation_floor(features, 0).item() == pytest.approx(0.625)   # the total variance
    assert ust.distillation_floor(features, 1).item() == pytest.approx(0.125)   # the smaller direction is lost
    assert ust.distillation_floor(features, 2).item() == pytest.approx(0.0, abs=1e-12)
    assert ust.distillation_floor(features, 5).item() == pytest.approx(0.0, abs=1e-12)
    rotation = torch.tensor([[0.6, -0.8], [0.8, 0.6]])
    assert ust.distillation_floor(features @ rotation, 1).item() == pytest.approx(0.125)


def test_refit_distillation_loss_by_hand():
    # fitted on two patches: D(x) = 2x; on the evaluated ones the errors are 1 and 0
    fit = (torch.tensor([[0.0], [1.0]]), torch.tensor([[0.0], [2.0]]))
    loss = ust.refit_distillation_loss(torch.tensor([[0.0], [1.0]]), torch.tensor([[1.0], [2.0]]), fit=fit)
    assert loss.item() == pytest.approx(0.5)
    # features that are an affine map of the descriptors are decoded exactly, held out or not
    gen = torch.Generator().manual_seed(0)
    d, a, b = torch.randn(40, 3, generator=gen), torch.randn(3, 6, generator=gen), torch.randn(6, generator=gen)
    assert ust.refit_distillation_loss(d[20:], d[20:] @ a + b, fit=(d[:20], d[:20] @ a + b)).item() < 1e-10
    assert ust.refit_distillation_loss(d.reshape(40, 3, 1, 1), d @ a + b).item() < 1e-10


def test_refit_reaches_the_floor_only_with_the_principal_components():
    gen = torch.Generator().manual_seed(1)
    features = torch.randn(200, 8, generator=gen) @ torch.randn(8, 8, generator=gen) + 5
    floor = ust.distillation_floor(features, 3).item()
    centred = (features - features.mean(0)).double()
    principal = torch.linalg.eigh(centred.T @ centred).eigenvectors[:, -3:]       # the 3 largest
    assert ust.refit_distillation_loss(centred @ principal, features).item() == pytest.approx(floor, rel=1e-9)
    for _ in range(5):                                                               # any other 3-d code is worse
        other = features @ torch.randn(8, 3, generator=gen)
        assert ust.refit_distillation_loss(other, features).item() > floor


def test_distillation_floor_and_refit_refuse_bad_shapes():
    with pytest.raises(ValueError, match=r"\(N, F\)"):
        ust.distillation_floor(torch.zeros(5), 1)
    with pytest.raises(ValueError, match="out_dim"):
        ust.distillation_floor(torch.zeros(5, 3), -1)
    with pytest.raises(ValueError, match="N = 4"):
        ust.refit_distillation_loss(torch.zeros(3, 2), torch.zeros(4, 5))
    with pytest.raises(ValueError, match="fit patches"):
        ust.refit_distillation_loss(torch.zeros(4, 2), torch.zeros(4, 5), fit=(torch.zeros(4, 3), torch.zeros(4, 5)))
