"""Fast dense descriptor extraction (Bailer et al., BMVC 2017).

Introduced in the book's chapter *Student regression*.

A :class:`~ust.PatchNet` maps one ``p x p`` patch to one descriptor. The
method needs one descriptor for *every pixel*: the descriptor of the patch
centred there (Bergmann et al. 2020, Sec. 3.2: "... we use the fast dense
feature extraction of Bailer et al."). Running the patch network on each of
the ``H * W`` patches repeats almost all of the work, because neighbouring
patches overlap.

Convolutions can simply slide over the whole image. Strided max-pooling
cannot: a pooled map keeps only every second position. *Multipooling* pools
the map four times, starting at row/column offsets ``(0, 0), (0, 1), (1, 0),
(1, 1)``, and stacks the four results along the batch axis; after ``L``
pooling layers the batch holds ``4**L`` interleaved sub-images.
*Unwarping* puts them back into one full-resolution map. The result equals
the per-patch network exactly (up to float rounding), while every
convolution runs once per pixel instead of once per pixel per patch.

Padding: the image is padded by ``p // 2`` pixels on every side, so that
the patch centred at pixel ``(r, c)`` is ``padded[r : r + p, c : c + p]``.
The default ``"zeros"`` pads with black (0 in ``[0, 1]`` images), which
works for images of any size, including images smaller than the patch;
``"replicate"`` repeats the border; ``"reflect"`` mirrors it and needs
``H, W > p // 2``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_images
from .networks import PatchNet

__all__ = ["DensePatchNet", "naive_dense_descriptors", "extract_patches", "PADDING_MODES", "DENSE_METHODS"]

#: Padding modes accepted by the dense extractors.
PADDING_MODES = ("zeros", "replicate", "reflect")
#: The two exact dense formulations: Bailer et al.'s, and dilated ("a trous") convolutions.
DENSE_METHODS = ("dilated", "multipool")


def _check_choice(value: str, choices: tuple[str, ...], name: str) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}; got {value!r}.")


def _pad(images: torch.Tensor, before: int, after: int, padding: str, patch_size: int) -> torch.Tensor:
    """Pad ``(B, C, H, W)`` by ``before`` rows/columns at the top/left and ``after`` at the bottom/right."""
    if padding == "reflect" and min(images.shape[-2:]) <= max(before, after):
        raise ValueError(f"padding='reflect' needs images larger than {patch_size // 2}x{patch_size // 2} for "
                         f"p={patch_size}; got {images.shape[-2]}x{images.shape[-1]}. Use padding='zeros' or "
                         "'replicate', or resize the images.")
    mode = "constant" if padding == "zeros" else padding
    return F.pad(images, (before, after, before, after), mode=mode)


def _max_pool_stride1(x: torch.Tensor, dilation: int) -> torch.Tensor:
    """2x2 max-pool with stride 1 and the given dilation: ``(N, C, h, w) -> (N, C, h - d, w - d)``.

    Same values as ``F.max_pool2d(x, 2, stride=1, dilation=d)``; two
    element-wise maxima are faster on the CPU and keep ``channels_last``.
    """
    rows = torch.maximum(x[..., :-dilation, :], x[..., dilation:, :])
    return torch.maximum(rows[..., :-dilation], rows[..., dilation:])


class DensePatchNet(nn.Module):
    """A :class:`~ust.PatchNet` applied densely: one descriptor per pixel.

    Computes exactly what :func:`naive_dense_descriptors` computes, sharing
    the weights of ``net`` (no copy: training one trains the other). Two
    exact formulations:

    * ``"multipool"``: Bailer et al. (2017), the method the paper uses
      (Bergmann et al. 2020, Sec. 3.2). Each stride-2 max-pool becomes four
      pools at offsets ``(0, 0), (0, 1), (1, 0), (1, 1)`` stacked on the batch
      axis; at the end the ``4**L`` sub-images are *unwarped* (interleaved)
      into one map.
    * ``"dilated"`` (default, faster here): each stride-2 max-pool becomes a
      stride-1 max-pool and every later layer is dilated by 2 per pool
      passed ("a trous"). Same arithmetic as multipooling, without the
      shuffling of the batch.

    Args:
        net: The patch network.
        padding: ``"zeros"`` (default), ``"replicate"`` or ``"reflect"``; see
            the module docstring.
        method: ``"dilated"`` or ``"multipool"``.

    Example:
        >>> dense = DensePatchNet(PatchNet(33))
        >>> dense(torch.rand(2, 3, 28, 30)).shape
        torch.Size([2, 128, 28, 30])
    """

    def __init__(self, net: PatchNet, padding: str = "zeros", method: str = "dilated") -> None:
        super().__init__()
        if not isinstance(net, PatchNet):
            raise ValueError(f"DensePatchNet wraps a ust.PatchNet; got {type(net).__name__}.")
        _check_choice(padding, PADDING_MODES, "padding")
        _check_choice(method, DENSE_METHODS, "method")
        self.net = net
        self.padding = padding
        self.method = method
        self._pools = sum(isinstance(m, nn.MaxPool2d) for m in net.features)

    @property
    def patch_size(self) -> int:
        return self.net.patch_size

    @property
    def out_dim(self) -> int:
        return self.net.out_dim

    # -- multipooling (Bailer et al.) ---------------------------------------
    def _output_size(self, padded: int) -> int:
        """Side of each sub-image at the end, for an input side ``padded``."""
        size = padded
        for layer in self.net.features:
            if isinstance(layer, nn.Conv2d):
                size -= layer.kernel_size[0] - 1
            elif isinstance(layer, nn.MaxPool2d):
                size = (size - 1) // 2  # both offsets must fit
        return size

    def _extra(self, side: int, padded: int) -> int:
        """Extra rows at the bottom so that the unwarped map covers ``side``."""
        extra = 0
        while self._output_size(padded + extra) * self.net.stride < side:
            extra += 1
        return extra

    @staticmethod
    def _multipool(x: torch.Tensor) -> torch.Tensor:
        """Max-pool 2x2/2 at the four offsets; stack them on the batch axis.

        ``(N, C, h, w) -> (4N, C, (h - 1) // 2, (w - 1) // 2)``; the output
        batch index is ``(2 i + j) N + n`` for row offset ``i`` and column
        offset ``j``. Computed as one stride-1 pool, then split by parity.
        """
        n, c, h, w = x.shape
        h, w = (h - 1) // 2, (w - 1) // 2
        pooled = _max_pool_stride1(x[..., :2 * h + 1, :2 * w + 1], 1)  # (N, C, 2h, 2w)
        pooled = pooled.reshape(n, c, h, 2, w, 2).permute(3, 5, 0, 1, 2, 4)  # (i, j, N, C, h, w)
        return pooled.reshape(4 * n, c, h, w).contiguous(memory_format=torch.channels_last)

    def _unwarp(self, y: torch.Tensor, batch: int) -> torch.Tensor:
        """Interleave the ``4**L`` sub-images into one full-resolution map.

        After ``L`` multipoolings the batch axis is ``(i_L, j_L, ..., i_1, j_1,
        n)``; sub-image pixel ``(a, b)`` is input position ``(S a + sum_l i_l
        2**(l-1), S b + sum_l j_l 2**(l-1))`` with ``S = 2**L``.
        """
        levels = self._pools
        if levels == 0:
            return y
        d, h, w = y.shape[1:]
        y = y.reshape(*([2] * (2 * levels)), batch, d, h, w)
        rows = list(range(0, 2 * levels, 2))  # i_L, ..., i_1 (most significant first)
        cols = list(range(1, 2 * levels, 2))  # j_L, ..., j_1
        n_axis, d_axis, h_axis, w_axis = 2 * levels, 2 * levels + 1, 2 * levels + 2, 2 * levels + 3
        y = y.permute(n_axis, d_axis, h_axis, *rows, w_axis, *cols)
        stride = 2 ** levels
        return y.reshape(batch, d, h * stride, w * stride)

    def _forward_multipool(self, x: torch.Tensor, batch: int, height: int, width: int) -> torch.Tensor:
        extra_h, extra_w = self._extra(height, x.shape[-2]), self._extra(width, x.shape[-1])
        if extra_h or extra_w:  # feeds only outputs that are cropped away
            x = F.pad(x, (0, extra_w, 0, extra_h))
        for layer in self.net.features:
            x = self._multipool(x) if isinstance(layer, nn.MaxPool2d) else layer(x)
        return self._unwarp(x, batch)

    # -- dilated convolutions ----------------------------------------------
    def _forward_dilated(self, x: torch.Tensor) -> torch.Tensor:
        dilation = 1
        for layer in self.net.features:
            if isinstance(layer, nn.MaxPool2d):
                x = _max_pool_stride1(x, dilation)
                dilation *= 2
            elif isinstance(layer, nn.Conv2d):
                x = F.conv2d(x, layer.weight, layer.bias, dilation=dilation)
            else:
                x = layer(x)
        return x

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Dense descriptors.

        Args:
            images: ``(B, C, H, W)`` floats in ``[0, 1]``, any ``H, W >= 1``
                (``> p // 2`` with ``padding="reflect"``).

        Returns:
            ``(B, out_dim, H, W)``: entry ``[:, :, r, c]`` equals
            ``net(patch)`` for the ``p x p`` patch centred at ``(r, c)`` of
            the padded image.

        Raises:
            ValueError: Wrong number of dimensions or channels, or an image
                too small for reflection padding.
        """
        check_images(images, channels=self.net.in_channels)
        batch, _, height, width = images.shape
        # The output at (r, c) sees padded rows r .. r + receptive_field - 1,
        # so the bottom/right needs only receptive_field - 1 - p // 2 rows.
        before = self.patch_size // 2
        after = self.net.receptive_field - 1 - before
        x = _pad(images, before, after, self.padding, self.patch_size)
        x = x.contiguous(memory_format=torch.channels_last)  # faster convolutions on CPU
        if self.method == "dilated":
            y = self._forward_dilated(x)
        else:
            y = self._forward_multipool(x, batch, height, width)
        return y[:, :, :height, :width].contiguous()

    def strided(self, images: torch.Tensor, offset: tuple[int, int] = (0, 0)) -> torch.Tensor:
        """Descriptors on the network's native lattice only (much cheaper).

        The patch network applied to the padded image directly slides with
        stride ``S = net.stride`` (8, 4, 1 for p = 65, 33, 17): it computes
        the dense map at the positions ``(o_r + S a, o_c + S b)`` only. Used
        to train the students on a random sub-lattice per batch (an unbiased
        estimate of the dense loss) and for image-level scores.

        Args:
            images: ``(B, C, H, W)`` floats in ``[0, 1]``.
            offset: ``(o_r, o_c)`` with ``0 <= o < S``.

        Returns:
            ``(B, out_dim, ceil((H - o_r) / S), ceil((W - o_c) / S))``, equal to
            ``self(images)[:, :, o_r::S, o_c::S]``.

        Raises:
            ValueError: Bad images or an offset outside ``[0, S)``.
        """
        check_images(images, channels=self.net.in_channels)
        stride = self.net.stride
        if len(offset) != 2 or not all(0 <= int(o) < stride for o in offset):
            raise ValueError(f"offset must be two integers in [0, {stride}) for p={self.patch_size}; got {offset}.")
        height, width = images.shape[-2:]
        rows, cols = -(-(height - offset[0]) // stride), -(-(width - offset[1]) // stride)
        if rows <= 0 or cols <= 0:  # an offset beyond a tiny image: no lattice point inside
            return images.new_zeros(images.shape[0], self.out_dim, max(rows, 0), max(cols, 0))
        half = self.patch_size // 2
        x = _pad(images, half, half, self.padding, self.patch_size)[..., offset[0]:, offset[1]:]
        y = self.net.features(x.contiguous(memory_format=torch.channels_last))
        return y[:, :, :rows, :cols].contiguous()

    def extra_repr(self) -> str:
        return f"padding={self.padding!r}, method={self.method!r}"


def extract_patches(images: torch.Tensor, patch_size: int, padding: str = "zeros") -> torch.Tensor:
    """All ``p x p`` patches of a batch, one centred at every pixel.

    Args:
        images: ``(B, C, H, W)``.
        patch_size: ``p`` (odd).
        padding: As for :class:`DensePatchNet`.

    Returns:
        ``(B * H * W, C, p, p)``, ordered by batch, then row, then column.
    """
    check_images(images)
    _check_choice(padding, PADDING_MODES, "padding")
    batch, channels, height, width = images.shape
    half = patch_size // 2
    padded = _pad(images, half, half, padding, patch_size)
    patches = padded.unfold(2, patch_size, 1).unfold(3, patch_size, 1)  # (B, C, H, W, p, p)
    return patches.permute(0, 2, 3, 1, 4, 5).reshape(batch * height * width, channels, patch_size, patch_size)


@torch.no_grad()
def naive_dense_descriptors(net: PatchNet, images: torch.Tensor, padding: str = "zeros",
                            batch_size: int = 256) -> torch.Tensor:
    """Reference path: run ``net`` on the patch centred at every pixel.

    The slow, obviously-correct definition that :class:`DensePatchNet` must
    reproduce; used by the tests and the benchmark.

    Args:
        net: The patch network.
        images: ``(B, C, H, W)``.
        padding: As for :class:`DensePatchNet`.
        batch_size: Patches per forward pass (``1`` is the literal
            one-patch-at-a-time loop).

    Returns:
        ``(B, out_dim, H, W)``.
    """
    check_images(images, channels=net.in_channels)
    batch, _, height, width = images.shape
    patches = extract_patches(images, net.patch_size, padding)
    out = torch.cat([net.describe(patches[i:i + batch_size]) for i in range(0, len(patches), batch_size)])
    return out.reshape(batch, height, width, net.out_dim).permute(0, 3, 1, 2).contiguous()
