"""Patch networks: the teacher and student architecture of the paper.

Introduced in the book's chapter *Teacher losses*; students reuse it in
*Student regression*.

Bergmann et al. (2020), Sec. 3.1 and the supplementary architecture table,
describe the teacher :math:`\\hat T` for patch size ``p = 65`` layer by layer::

    conv 5x5-128, maxpool 2/2, conv 5x5-128, maxpool 2/2, conv 5x5-256,
    maxpool 2/2, conv 4x4-256, conv 1x1-128,   LeakyReLU slope 5e-3

A ``65 x 65`` patch enters, a ``1 x 1 x 128`` descriptor leaves. Students use
the same architecture (Sec. 3.2).

Layouts used here (kernel size k, output channels, ``P`` = maxpool 2/2):

======  =============================================  ==================
 p       layers                                          receptive field
======  =============================================  ==================
 65      5-128, P, 5-128, P, 5-256, P, 4-256, 1-d        60 (as the paper)
 33      6-128, P, 5-128, P, 3-256, 3-256, 1-d           33
 17      5-128, 5-128, 5-128, 5-128, 1-d                 17
======  =============================================  ==================

Why these ``p = 33`` and ``p = 17`` layouts: they keep the ``p = 65``
network's five convolutions, so that the three scales differ mainly in how
far they see. Smaller patches drop pooling stages (``p = 17`` has none) and
choose kernel sizes so that a ``p x p`` input gives exactly ``1 x 1`` and the
receptive field is exactly ``p``. ``p = 33`` keeps the widths (128, 128,
256, 256, d). ``p = 17`` stays 128 wide: without pooling every layer runs at
full resolution in a dense map, and 256-wide layers would make the smallest
scale the most expensive one (2.9 M multiply-adds per pixel against 2.3 M
for ``p = 65``; with 128 channels it is 1.25 M).
The paper's own ``p = 65`` layout loses 5 pixels to floor pooling
(``61 -> 30`` discards a row, and so on): its output depends on the
top-left ``60 x 60`` pixels of the ``65 x 65`` patch only. We keep it
exactly as published and report ``receptive_field = 60``.

A LeakyReLU (slope ``5e-3``) follows every convolution except the last, so
that descriptors are unconstrained real vectors to regress.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ._checks import check_images

__all__ = ["PatchNet", "PATCH_SIZES", "LEAKY_SLOPE", "receptive_field"]

#: Slope of the LeakyReLU activations (paper, supplementary material).
LEAKY_SLOPE = 5e-3


@dataclass(frozen=True)
class _Conv:
    kernel: int
    channels: int | None  # None: the descriptor dimension ``out_dim``


@dataclass(frozen=True)
class _Pool:
    kernel: int = 2


_LAYOUTS = {
    65: (_Conv(5, 128), _Pool(), _Conv(5, 128), _Pool(), _Conv(5, 256), _Pool(), _Conv(4, 256), _Conv(1, None)),
    33: (_Conv(6, 128), _Pool(), _Conv(5, 128), _Pool(), _Conv(3, 256), _Conv(3, 256), _Conv(1, None)),
    17: (_Conv(5, 128), _Conv(5, 128), _Conv(5, 128), _Conv(5, 128), _Conv(1, None)),
}

#: The patch sizes of the paper's three scales.
PATCH_SIZES = tuple(sorted(_LAYOUTS))


def receptive_field(layers: nn.Sequential) -> int:
    """Receptive field of a stack of convolutions and stride-2 poolings.

    ``r = 1 + sum_l (k_l - 1) * j_l`` where ``j_l`` is the product of the
    strides before layer ``l``. Floor pooling can make the *effective* field
    smaller than the input that yields a ``1 x 1`` output.

    Args:
        layers: A sequence of ``Conv2d``, ``MaxPool2d`` and activations.

    Returns:
        The receptive field in pixels (one side of a square).
    """
    field, jump = 1, 1
    for layer in layers:
        if isinstance(layer, nn.Conv2d):
            field += (layer.kernel_size[0] - 1) * jump
        elif isinstance(layer, nn.MaxPool2d):
            field += (layer.kernel_size - 1) * jump
            jump *= layer.stride
    return field


class PatchNet(nn.Module):
    """Teacher / student network that maps a ``p x p`` patch to a descriptor.

    Implements the patch networks of Bergmann et al. (2020), Sec. 3.1 and
    supplementary material (see the module docstring for the layouts).
    Input images are floats in ``[0, 1]``; no normalisation happens inside.

    For dense maps (one descriptor per pixel) wrap it in
    :class:`ust.DensePatchNet`, which shares these weights.

    Args:
        patch_size: 17, 33 or 65.
        out_dim: Descriptor dimension ``d`` (the paper uses 128).
        in_channels: Image channels ``C`` (3 for the RGB teachers; grayscale
            images enter them as three equal channels).

    Attributes:
        patch_size (int): ``p``.
        receptive_field (int): Pixels one output actually sees: 60 for
            ``p = 65`` (floor pooling), 33 and 17 for the others. The field
            starts at the top-left corner of the patch.
        stride (int): Product of the pooling strides (8, 4, 1).
        features (nn.Sequential): The layers.

    Raises:
        ValueError: For an unsupported ``patch_size`` or non-positive sizes.

    Example:
        >>> net = PatchNet(65)
        >>> net(torch.rand(2, 3, 65, 65)).shape
        torch.Size([2, 128, 1, 1])
    """

    def __init__(self, patch_size: int, out_dim: int = 128, in_channels: int = 3) -> None:
        super().__init__()
        if patch_size not in _LAYOUTS:
            raise ValueError(f"patch_size must be one of {PATCH_SIZES} (the paper's three scales); got {patch_size!r}.")
        if int(out_dim) < 1 or int(in_channels) < 1:
            raise ValueError(f"out_dim and in_channels must be positive integers; got out_dim={out_dim!r}, "
                             f"in_channels={in_channels!r}.")
        self.patch_size = int(patch_size)
        self.out_dim = int(out_dim)
        self.in_channels = int(in_channels)
        layers: list[nn.Module] = []
        channels = self.in_channels
        specs = _LAYOUTS[self.patch_size]
        last_conv = max(i for i, s in enumerate(specs) if isinstance(s, _Conv))
        for i, spec in enumerate(specs):
            if isinstance(spec, _Pool):
                layers.append(nn.MaxPool2d(spec.kernel, stride=2))
                continue
            out = self.out_dim if spec.channels is None else spec.channels
            layers.append(nn.Conv2d(channels, out, spec.kernel))
            if i != last_conv:
                layers.append(nn.LeakyReLU(LEAKY_SLOPE))
            channels = out
        self.features = nn.Sequential(*layers)
        self.receptive_field = receptive_field(self.features)
        self.stride = 2 ** sum(isinstance(s, _Pool) for s in specs)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        """Describe patches.

        Args:
            patches: ``(B, C, p, p)`` floats in ``[0, 1]``. Larger inputs are
                allowed and give a strided map (stride ``self.stride``).

        Returns:
            ``(B, out_dim, 1, 1)`` for ``p x p`` input.

        Raises:
            ValueError: Wrong number of dimensions or channels, or patches
                smaller than ``p x p``.
        """
        check_images(patches, channels=self.in_channels, min_size=self.patch_size, name="patches",
                     what=f"A PatchNet(p={self.patch_size}) needs inputs of at least {self.patch_size}x"
                          f"{self.patch_size}; for one descriptor per pixel of a smaller image use "
                          "ust.DensePatchNet(net), which pads the image.")
        return self.features(patches)

    def describe(self, patches: torch.Tensor) -> torch.Tensor:
        """Descriptors of ``(B, C, p, p)`` patches as a ``(B, out_dim)`` matrix.

        Raises:
            ValueError: If the patches are not exactly ``p x p``.
        """
        if patches.dim() == 4 and tuple(patches.shape[-2:]) != (self.patch_size, self.patch_size):
            raise ValueError(f"describe() takes patches of exactly {self.patch_size}x{self.patch_size}; got "
                             f"{patches.shape[-2]}x{patches.shape[-1]}. Crop them, or use ust.DensePatchNet "
                             "for whole images.")
        return self(patches).flatten(1)

    def extra_repr(self) -> str:
        return (f"patch_size={self.patch_size}, out_dim={self.out_dim}, in_channels={self.in_channels}, "
                f"receptive_field={self.receptive_field}")
