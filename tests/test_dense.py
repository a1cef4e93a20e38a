"""Fast dense extraction equals the per-patch definition."""

import pytest
import torch

import ust

SIZES = [(11, 13), (16, 10)]  # odd and even, larger than the p=65 stride of 8


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    return {p: ust.PatchNet(p).eval() for p in ust.PATCH_SIZES}


@pytest.mark.parametrize("method", ust.DENSE_METHODS)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("p", ust.PATCH_SIZES)
def test_dense_equals_naive(nets, p, size, method):
    torch.manual_seed(1)
    x = torch.rand(2, 3, *size)
    with torch.no_grad():
        fast = ust.DensePatchNet(nets[p], method=method)(x)
    slow = ust.naive_dense_descriptors(nets[p], x)
    assert fast.shape == (2, 128, *size)
    assert (fast - slow).abs().max().item() <= 1e-4
    # the maps are not trivially constant: neighbouring pixels differ
    assert (fast[..., 1:] - fast[..., :-1]).abs().max().item() > 1e-3


@pytest.mark.parametrize("padding", ["replicate", "reflect"])
@pytest.mark.parametrize("method", ust.DENSE_METHODS)
def test_padding_modes(nets, padding, method):
    x = torch.rand(1, 3, 40, 37)
    with torch.no_grad():
        fast = ust.DensePatchNet(nets[65], padding=padding, method=method)(x)
    # the naive definition on a subset of pixels (the full loop is slow for p=65)
    patches = ust.extract_patches(x, 65, padding)
    idx = torch.tensor([0, 36, 37 * 20 + 5, 40 * 37 - 1])
    with torch.no_grad():
        expected = nets[65].describe(patches[idx])
    got = fast.permute(0, 2, 3, 1).reshape(-1, 128)[idx]
    assert (got - expected).abs().max().item() <= 1e-4


@pytest.mark.parametrize("p", ust.PATCH_SIZES)
def test_image_smaller_than_patch_is_zero_padded(nets, p):
    x = torch.rand(2, 3, 3, 5)
    with torch.no_grad():
        fast = ust.DensePatchNet(nets[p])(x)
    assert (fast - ust.naive_dense_descriptors(nets[p], x)).abs().max().item() <= 1e-4


def test_naive_with_literal_one_patch_loop(nets):
    x = torch.rand(1, 3, 4, 3)
    a = ust.naive_dense_descriptors(nets[17], x, batch_size=1)
    b = ust.naive_dense_descriptors(nets[17], x, batch_size=256)
    assert (a - b).abs().max().item() <= 1e-5


def test_extract_patches_centres(nets):
    x = torch.arange(2 * 1 * 4 * 5, dtype=torch.float32).reshape(2, 1, 4, 5)
    patches = ust.extract_patches(x, 17)
    assert patches.shape == (40, 1, 17, 17)
    # the centre of patch (b, r, c) is pixel (b, r, c)
    assert torch.equal(patches[:, 0, 8, 8], x.flatten())


@pytest.mark.parametrize("method", ust.DENSE_METHODS)
def test_gradients_equal_naive(method):
    """Training through the dense net gives the per-patch gradients."""
    torch.manual_seed(2)
    net = ust.PatchNet(33, out_dim=8).double()
    x = torch.rand(2, 3, 7, 6, dtype=torch.float64)
    weights = torch.rand(2, 8, 7, 6, dtype=torch.float64)
    (ust.DensePatchNet(net, method=method)(x) * weights).sum().backward()
    fast = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    patches = ust.extract_patches(x, 33)
    slow_out = net.describe(patches).reshape(2, 7, 6, 8).permute(0, 3, 1, 2)
    (slow_out * weights).sum().backward()
    for g_fast, p in zip(fast, net.parameters()):
        assert torch.allclose(g_fast, p.grad, atol=1e-9)


def test_shares_weights(nets):
    net = ust.PatchNet(17)
    dense = ust.DensePatchNet(net)
    assert all(a is b for a, b in zip(dense.parameters(), net.parameters()))
    x = torch.rand(1, 3, 5, 5)
    before = dense(x).detach()
    with torch.no_grad():
        net.features[0].bias.add_(1.0)
    assert not torch.allclose(before, dense(x))


def test_errors(nets):
    with pytest.raises(ValueError, match="padding='reflect' needs images larger than 32x32"):
        ust.DensePatchNet(nets[65], padding="reflect")(torch.rand(1, 3, 20, 40))
    with pytest.raises(ValueError, match="padding must be one of"):
        ust.DensePatchNet(nets[17], padding="circular")
    with pytest.raises(ValueError, match="method must be one of"):
        ust.DensePatchNet(nets[17], method="loop")
    with pytest.raises(ValueError, match="4-D"):
        ust.DensePatchNet(nets[17])(torch.rand(3, 10, 10))
    with pytest.raises(ValueError, match="1 channels but the network expects 3"):
        ust.DensePatchNet(nets[17])(torch.rand(1, 1, 10, 10))
    with pytest.raises(ValueError, match="wraps a ust.PatchNet"):
        ust.DensePatchNet(torch.nn.Conv2d(3, 3, 3))
