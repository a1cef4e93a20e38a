"""Baselines: kNN distances by hand, autoencoder shapes, reproducible training, a toy novelty problem."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from ust.baselines import (
    ConvAutoencoder,
    knn_scores,
    reconstruction_error_maps,
    reconstruction_scores,
    train_autoencoder,
)


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


# --------------------------------------------------------------------------- kNN

TRAIN = np.array([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0]])
TEST = np.array([[5.0, 5.0], [0.0, -7.0]])


def test_knn_unnormalized_by_hand():
    # (5,5): distances sqrt(16+25) = sqrt(41), sqrt(25+9) = sqrt(34), sqrt(64+25) = sqrt(89)
    # (0,-7): distances sqrt(1+49) = sqrt(50), 9, sqrt(9+49) = sqrt(58)
    np.testing.assert_allclose(knn_scores(TRAIN, TEST, k=1, normalize=False), [34 ** 0.5, 50 ** 0.5])
    np.testing.assert_allclose(knn_scores(TRAIN, TEST, k=2, normalize=False),
                               [(34 ** 0.5 + 41 ** 0.5) / 2, (50 ** 0.5 + 58 ** 0.5) / 2])


def test_knn_normalized_by_hand():
    # unit vectors: train (1,0), (0,1), (-1,0); test (1,1)/sqrt2 and (0,-1); |u - v|^2 = 2 - 2 cos(angle)
    # (1,1)/sqrt2: 45 deg to (1,0) and (0,1) -> sqrt(2 - sqrt2); 135 deg to (-1,0) -> sqrt(2 + sqrt2)
    # (0,-1): 90 deg to (1,0) and (-1,0) -> sqrt2; 180 deg to (0,1) -> 2
    near, far = math.sqrt(2 - math.sqrt(2)), math.sqrt(2 + math.sqrt(2))
    np.testing.assert_allclose(knn_scores(TRAIN, TEST, k=2), [near, math.sqrt(2)])
    np.testing.assert_allclose(knn_scores(TRAIN, TEST, k=3), [(2 * near + far) / 3, (2 * math.sqrt(2) + 2) / 3])


def test_knn_flattens_images_and_returns_tensors_for_tensors():
    rng = np.random.default_rng(0)
    train, test = rng.random((6, 1, 2, 2)), rng.random((3, 1, 2, 2))
    flat = knn_scores(train.reshape(6, 4), test.reshape(3, 4), k=2)
    np.testing.assert_allclose(knn_scores(train, test, k=2), flat)
    out = knn_scores(torch.from_numpy(train), torch.from_numpy(test), k=2)
    assert isinstance(out, torch.Tensor) and out.shape == (3,)
    np.testing.assert_allclose(out.numpy(), flat)


def test_knn_errors():
    with pytest.raises(ValueError, match="between 1 and the number of training examples"):
        knn_scores(TRAIN, TEST, k=4)
    with pytest.raises(ValueError, match="2 values per example but test_features have 3"):
        knn_scores(TRAIN, np.zeros((1, 3)))
    with pytest.raises(ValueError, match=r"x\[:, None\]"):
        knn_scores(np.zeros(3), np.zeros(2))


# --------------------------------------------------------------------------- autoencoder


@pytest.mark.parametrize("size, padded", [(28, 32), (32, 32), (64, 64)])
@pytest.mark.parametrize("channels", [1, 3])
def test_autoencoder_shapes(size, padded, channels):
    ae = ConvAutoencoder(in_channels=channels, image_size=size, latent_dim=8)
    x = torch.rand(2, channels, size, size)
    assert ae(x).shape == (2, channels, size, size)
    assert ae.encode(x).shape == (2, 8)
    assert ae.padded_size == (padded, padded)
    assert ae.bottleneck_shape == (128, padded // 8, padded // 8)


def test_autoencoder_rejects_other_sizes():
    ae = ConvAutoencoder(in_channels=1, image_size=28)
    with pytest.raises(ValueError, match=r"built for 28x28 images; got 32x32.*F.interpolate"):
        ae(torch.rand(1, 1, 32, 32))
    with pytest.raises(ValueError, match="3 channels but the network expects 1"):
        ae(torch.rand(1, 3, 28, 28))


class Constant(nn.Module):
    """Reconstructs every pixel as ``value``."""

    def __init__(self, value):
        super().__init__()
        self.value = nn.Parameter(torch.tensor(value))

    def forward(self, x):
        return torch.zeros_like(x) + self.value


def test_reconstruction_error_by_hand():
    model = Constant(0.5).train()
    x = torch.full((2, 3, 2, 2), 0.1)
    # three channels, each (0.1 - 0.5)^2 = 0.16 -> 0.48 per pixel
    torch.testing.assert_close(reconstruction_error_maps(model, x, batch_size=1), torch.full((2, 2, 2), 0.48))
    assert model.training  # the mode is restored
    y = torch.tensor([0.0, 0.5, 1.0, 0.5]).reshape(1, 1, 2, 2)
    # errors 0.25, 0, 0.25, 0 -> mean 0.125
    torch.testing.assert_close(reconstruction_scores(model, y), torch.tensor([0.125]))
    with pytest.raises(ValueError, match=r"values in \[0, 1\].*/ 255"):
        reconstruction_scores(model, y * 255)


def squares(n, size=16, seed=0):
    """Dark images (0.1) with one bright 4x4 square (0.9) at a random position."""
    g = torch.Generator().manual_seed(seed)
    x = torch.full((n, 1, size, size), 0.1)
    for i, (r, c) in enumerate(torch.randint(0, size - 4, (n, 2), generator=g).tolist()):
        x[i, 0, r:r + 4, c:c + 4] = 0.9
    return x


@pytest.fixture(scope="module")
def trained():
    x = squares(32)
    model, losses = train_autoencoder(x, epochs=4, batch_size=8, latent_dim=16, seed=0, device="cpu",
                                      progress=False)
    return x, model, losses


def test_training_decreases_the_loss(trained):
    _, model, losses = trained
    assert len(losses) == 4 and not model.training
    assert losses[-1] < 0.75 * losses[0]


def test_same_seed_same_losses_other_seed_other_losses(trained):
    x, _, losses = trained
    # same init and the same shuffling: the first two epochs repeat exactly
    _, again = train_autoencoder(x, epochs=2, batch_size=8, latent_dim=16, seed=0, device="cpu", progress=False)
    assert again == losses[:2]
    _, other = train_autoencoder(x, epochs=1, batch_size=8, latent_dim=16, seed=1, device="cpu", progress=False)
    assert other[0] != losses[0]


def test_noise_reconstructs_worse_than_training_like_images(trained):
    x, model, _ = trained
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        untrained = ConvAutoencoder(1, 16, latent_dim=16)
    normal = squares(8, seed=1)  # new square positions, same distribution
    noise = torch.rand(8, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    s_normal, s_noise = reconstruction_scores(model, normal), reconstruction_scores(model, noise)
    # training helped the normal images ...
    assert s_normal.mean() < 0.75 * reconstruction_scores(untrained, normal).mean()
    # ... and every noise image scores above every normal one
    assert s_noise.min() > s_normal.max()


def test_backbone_features_resize_and_gray_to_rgb():
    from ust.backbones import load_backbone
    from ust.baselines import backbone_features

    net = load_backbone()
    gray = torch.rand(3, 1, 28, 28)
    feats = backbone_features(gray, net, image_size=32, batch_size=2)
    assert feats.shape == (3, 1280)
    manual = net(torch.nn.functional.interpolate(gray[:1].expand(-1, 3, -1, -1), size=(32, 32), mode="bilinear",
                                                 antialias=True, align_corners=False))
    assert torch.allclose(feats[:1], manual, atol=1e-5)


def test_teacher_features_are_mean_lattice_descriptors():
    import ust
    from ust.baselines import teacher_features

    torch.manual_seed(0)
    teacher = ust.PatchNet(33, out_dim=8).eval()
    x = torch.rand(3, 3, 12, 12)
    expected = ust.DensePatchNet(teacher).strided(x).mean((2, 3))
    assert torch.allclose(teacher_features(teacher, x, batch_size=2), expected, atol=1e-6)
