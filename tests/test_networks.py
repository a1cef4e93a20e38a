"""PatchNet: layouts, output shapes, receptive fields and input errors."""

import pytest
import torch
from torch import nn

import ust

# Hand-computed from the layouts in ust/networks.py: r = 1 + sum (k - 1) * jump.
# p=65: 1 + 4*1 + 1*1 + 4*2 + 1*2 + 4*4 + 1*4 + 3*8 = 60 (floor pooling loses 5 pixels)
# p=33: 1 + 5*1 + 1*1 + 4*2 + 1*2 + 2*4 + 2*4     = 33
# p=17: 1 + 4 + 4 + 4 + 4                          = 17
EXPECTED_FIELD = {65: 60, 33: 33, 17: 17}


@pytest.mark.parametrize("p", ust.PATCH_SIZES)
def test_patch_gives_one_descriptor(p):
    net = ust.PatchNet(p)
    out = net(torch.rand(3, 3, p, p))
    assert out.shape == (3, 128, 1, 1)
    assert net.describe(torch.rand(2, 3, p, p)).shape == (2, 128)


@pytest.mark.parametrize("p", ust.PATCH_SIZES)
def test_out_dim_and_in_channels(p):
    net = ust.PatchNet(p, out_dim=16, in_channels=1)
    assert net(torch.rand(2, 1, p, p)).shape == (2, 16, 1, 1)


def test_p65_is_the_papers_layout():
    net = ust.PatchNet(65)
    convs = [(m.kernel_size[0], m.out_channels) for m in net.features if isinstance(m, nn.Conv2d)]
    assert convs == [(5, 128), (5, 128), (5, 256), (4, 256), (1, 128)]
    kinds = [type(m).__name__ for m in net.features]
    assert kinds == ["Conv2d", "LeakyReLU", "MaxPool2d", "Conv2d", "LeakyReLU", "MaxPool2d", "Conv2d",
                     "LeakyReLU", "MaxPool2d", "Conv2d", "LeakyReLU", "Conv2d"]
    assert all(m.negative_slope == 5e-3 for m in net.features if isinstance(m, nn.LeakyReLU))
    assert all(m.kernel_size == 2 and m.stride == 2 for m in net.features if isinstance(m, nn.MaxPool2d))


@pytest.mark.parametrize("p", ust.PATCH_SIZES)
def test_receptive_field_attribute(p):
    assert ust.PatchNet(p).receptive_field == EXPECTED_FIELD[p]


@pytest.mark.parametrize("p", ust.PATCH_SIZES)
def test_receptive_field_by_perturbation(p):
    """Perturbing row i (or column i) changes the descriptor iff i < receptive field."""
    torch.manual_seed(0)
    net = ust.PatchNet(p).double().eval()
    base = torch.rand(1, 3, p, p, dtype=torch.float64)
    batch = []
    for axis in (2, 3):
        for i in range(p):
            for sign in (1.0, -1.0):
                x = base.clone()
                x.select(axis, i).fill_(sign * 1e3)
                batch.append(x)
    with torch.no_grad():
        ref = net(base).flatten()
        out = net(torch.cat(batch)).flatten(1)
    changed = (out - ref).abs().amax(1).reshape(2, p, 2).amax(2) > 0  # (axis, index)
    expected = torch.arange(p) < EXPECTED_FIELD[p]
    assert torch.equal(changed[0], expected) and torch.equal(changed[1], expected)


def test_unsupported_patch_size():
    with pytest.raises(ValueError, match=r"one of \(17, 33, 65\).*got 32"):
        ust.PatchNet(32)


def test_wrong_channels_message():
    net = ust.PatchNet(17)
    with pytest.raises(ValueError, match="1 channels but the network expects 3.*three equal channels"):
        net(torch.rand(2, 1, 17, 17))


def test_not_4d_message():
    with pytest.raises(ValueError, match=r"4-D \(B, C, H, W\).*unsqueeze\(0\)"):
        ust.PatchNet(17)(torch.rand(3, 17, 17))


def test_patch_smaller_than_p_message():
    with pytest.raises(ValueError, match="smaller than the required 33x33.*DensePatchNet"):
        ust.PatchNet(33)(torch.rand(1, 3, 20, 40))


def test_integer_images_message():
    with pytest.raises(ValueError, match="floating-point.*255"):
        ust.PatchNet(17)(torch.zeros(1, 3, 17, 17, dtype=torch.uint8))


def test_describe_needs_exact_patches():
    with pytest.raises(ValueError, match="exactly 17x17"):
        ust.PatchNet(17).describe(torch.rand(1, 3, 20, 20))
