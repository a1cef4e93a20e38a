"""Synthetic anomalies with pixel masks: localisation data without MVTec AD.

Introduced in the book's chapter *Introduction* (anomaly segmentation on
small images).

:func:`add_synthetic_anomalies` draws one defect into every image and
returns a boolean mask of the defect's region, so that anomaly *maps* can be
evaluated (per-region overlap, pixel AUROC) on MNIST, CIFAR-10 or the
digits, much as on MVTec AD's ground truth. Every changed pixel lies inside
the mask; pixels of the region that happen to keep their value (a black
stroke on black) still count as defective, as in hand-drawn ground truth.

:func:`rotate_quarter_turns`, :func:`splice_halves` and :func:`swap_halves`
make the other kind of validation anomaly, a *global* one: the whole image
turned by 90 degrees, two normal images joined at a random cut, or the
image's halves exchanged. They have no mask (every pixel may change) and
serve image-level validation only (chapter *Results*, "Does a larger image
help?" and "A harder validation anomaly"); :func:`global_anomalies` makes
any of them by name.
"""

from __future__ import annotations

import numpy as np
import torch

from .._checks import check_images

__all__ = ["SYNTHETIC_KINDS", "GLOBAL_KINDS", "add_synthetic_anomalies", "rotate_quarter_turns", "splice_halves",
           "swap_halves", "global_anomalies"]

#: The kinds of defect :func:`add_synthetic_anomalies` draws.
SYNTHETIC_KINDS = ("stroke", "blob", "paste")

#: Anomalies that change the whole image (no defect mask), for image-level
#: validation only (:func:`global_anomalies`): ``"rotate"`` is
#: :func:`rotate_quarter_turns`, ``"splice"`` :func:`splice_halves` and
#: ``"swap"`` :func:`swap_halves`.
GLOBAL_KINDS = ("rotate", "splice", "swap")

# Where splice_halves cuts, relative to the side it cuts across.
_SPLICE_CUT = (0.35, 0.65)

# Sizes relative to the image side min(H, W).
_STROKE_LENGTH = (0.25, 0.5)
_STROKE_WIDTH = (0.06, 0.12)
_BLOB_DIAMETER = (0.15, 0.35)
_PASTE_SIDE = (0.15, 0.35)


def _grid(h: int, w: int) -> np.ndarray:
    rows, cols = np.mgrid[0:h, 0:w]
    return np.stack([rows.ravel(), cols.ravel()], 1).astype(np.float64)  # (H*W, 2) pixel centres


def _stroke_mask(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A thick quadratic Bezier curve."""
    side = min(h, w)
    length = rng.uniform(*_STROKE_LENGTH) * side
    width = max(1.5, rng.uniform(*_STROKE_WIDTH) * side)
    middle = rng.uniform([0.25 * (h - 1), 0.25 * (w - 1)], [0.75 * (h - 1), 0.75 * (w - 1)])
    angle = rng.uniform(0, np.pi)
    direction = np.array([np.sin(angle), np.cos(angle)])
    start = np.clip(middle - length / 2 * direction, 0, [h - 1, w - 1])
    end = np.clip(middle + length / 2 * direction, 0, [h - 1, w - 1])
    normal = np.array([-direction[1], direction[0]])
    control = (start + end) / 2 + rng.uniform(-0.4, 0.4) * length * normal
    t = np.linspace(0, 1, 24)[:, None]
    curve = (1 - t) ** 2 * start + 2 * (1 - t) * t * control + t ** 2 * end  # (24, 2)
    a, b = curve[:-1], curve[1:]
    g = _grid(h, w)[:, None, :]
    ab = b - a
    s = np.clip(((g - a) * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-12), 0, 1)
    dist = np.linalg.norm(g - (a + s[..., None] * ab), axis=-1).min(1)
    mask = (dist <= width / 2).reshape(h, w)
    mask[int(round(start[0])), int(round(start[1]))] = True
    return mask


def _blob_mask(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A filled, rotated ellipse."""
    side = min(h, w)
    ra, rb = np.maximum(rng.uniform(*_BLOB_DIAMETER, size=2) * side / 2, 1.0)
    reach = min(max(ra, rb), (side - 1) / 2)  # keep the whole ellipse inside the image
    centre = rng.uniform([reach, reach], [h - 1 - reach, w - 1 - reach])
    angle = rng.uniform(0, np.pi)
    d = _grid(h, w) - centre
    u = d[:, 0] * np.cos(angle) + d[:, 1] * np.sin(angle)
    v = -d[:, 0] * np.sin(angle) + d[:, 1] * np.cos(angle)
    mask = ((u / ra) ** 2 + (v / rb) ** 2 <= 1).reshape(h, w)
    mask[int(round(centre[0])), int(round(centre[1]))] = True
    return mask


def _contrasting(image: torch.Tensor, mask: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Per channel: bright (0.8..1) where the region is dark on average, else dark (0..0.2)."""
    mean = image[:, mask].mean(1)
    bright = torch.from_numpy(rng.uniform(0.8, 1.0, size=len(mean))).to(image)
    dark = torch.from_numpy(rng.uniform(0.0, 0.2, size=len(mean))).to(image)
    return torch.where(mean < 0.5, bright, dark)


def add_synthetic_anomalies(images: torch.Tensor, *, kind: str = "stroke", seed: int = 0,
                            source: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw one synthetic defect into every image.

    Kinds (sizes relative to the side ``min(H, W)``):

    * ``"stroke"``: a thick curve (quadratic Bezier, 25-50 % of the side
      long, 6-12 % wide, at least 1.5 px) in a contrasting intensity,
      centred in the middle half of the image;
    * ``"blob"``: a filled, rotated ellipse with diameters of 15-35 % of the
      side, wholly inside the image, in a contrasting intensity;
    * ``"paste"``: a rectangle with sides of 15-35 % of the image, copied
      from a random place of a random image of ``source`` (e.g. images of
      another class), or, without ``source``, of another image of the
      batch.

    A contrasting intensity is chosen per channel: 0.8-1.0 where the
    region's mean is below 0.5, else 0.0-0.2. Positions, sizes and values
    come from ``np.random.default_rng(seed)``: the same call gives the same
    result.

    Args:
        images: float ``(N, C, H, W)`` in [0, 1].
        kind: One of :data:`SYNTHETIC_KINDS`.
        seed: Random seed.
        source: float ``(M, C, H', W')`` images to paste from (``"paste"``
            only; ``H'``, ``W'`` at least the pasted rectangle).

    Returns:
        ``(anomalous, masks)``: a modified copy ``(N, C, H, W)`` of
        ``images`` (values stay in [0, 1]) and boolean masks ``(N, H, W)``,
        True on the defect's region. Pixels outside the mask are unchanged.
    """
    check_images(images, name="images")
    if kind not in SYNTHETIC_KINDS:
        raise ValueError(f"kind must be one of {SYNTHETIC_KINDS}; got {kind!r}.")
    if images.numel() and (images.min() < 0 or images.max() > 1):
        raise ValueError(f"images must have values in [0, 1]; got {images.min().item():.3g}.."
                         f"{images.max().item():.3g}. Divide uint8 images by 255 (ust.data.preprocess does).")
    n, c, h, w = images.shape
    if kind == "paste":
        if source is None:
            if n < 2:
                raise ValueError("kind='paste' without source needs at least two images to paste between; "
                                 "pass source=... (e.g. images of another class).")
        else:
            check_images(source, channels=c, name="source")
            if len(source) == 0 or source.shape[-2] < h * _PASTE_SIDE[1] or source.shape[-1] < w * _PASTE_SIDE[1]:
                raise ValueError(f"source must hold at least one image of at least {_PASTE_SIDE[1]:.0%} of "
                                 f"{h}x{w}; got shape {tuple(source.shape)}.")
    elif source is not None:
        raise ValueError(f"source is only used with kind='paste'; got kind={kind!r}.")
    rng = np.random.default_rng(seed)
    out = images.detach().clone()
    masks = torch.zeros(n, h, w, dtype=torch.bool, device=images.device)
    for i in range(n):
        if kind in ("stroke", "blob"):
            m = torch.from_numpy((_stroke_mask if kind == "stroke" else _blob_mask)(h, w, rng)).to(images.device)
            value = _contrasting(out[i], m, rng)
            out[i][:, m] = value[:, None].expand(-1, int(m.sum()))
        else:
            ph = max(1, int(round(rng.uniform(*_PASTE_SIDE) * h)))
            pw = max(1, int(round(rng.uniform(*_PASTE_SIDE) * w)))
            top, left = int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - pw + 1))
            if source is None:
                j = int(rng.integers(0, n - 1))
                patch_from = images[j + (j >= i)]
            else:
                patch_from = source[int(rng.integers(0, len(source)))].to(out)
            sh, sw = patch_from.shape[-2:]
            st, sl = int(rng.integers(0, sh - ph + 1)), int(rng.integers(0, sw - pw + 1))
            out[i, :, top:top + ph, left:left + pw] = patch_from[:, st:st + ph, sl:sl + pw].clamp(0, 1)
            m = torch.zeros(h, w, dtype=torch.bool, device=images.device)
            m[top:top + ph, left:left + pw] = True
        masks[i] = m
    return out, masks


def rotate_quarter_turns(images: torch.Tensor, *, seed: int = 0) -> torch.Tensor:
    """Turn every image by 90 degrees, clockwise or anticlockwise: a global synthetic anomaly.

    Introduced in the book's chapter *Results* (Exercise 4). A stroke or a
    blob changes a few pixels and leaves the object as it was; the
    anomalies of the one-class protocol (another digit, another object)
    change its shape as a whole. A quarter turn of a normal image changes
    the shape and keeps everything else (strokes, textures, intensities),
    so it can tell apart settings that change what a patch sees of the
    object, such as the image size, where local defects cannot. A half
    turn is not used: an 8, a 0 or a 1 would stay itself.

    The direction of each image is drawn from
    ``np.random.default_rng(seed)``: the same call gives the same result.

    Args:
        images: ``(N, C, H, W)`` with ``H == W`` (a quarter turn of a
            non-square image changes its shape).
        seed: Random seed for the directions.

    Returns:
        ``(N, C, H, W)``: a turned copy of ``images``; values are moved, not
        changed.

    Raises:
        ValueError: Images that are not ``(N, C, H, W)`` or not square.
    """
    check_images(images, name="images")
    h, w = images.shape[-2:]
    if h != w:
        raise ValueError(f"rotate_quarter_turns needs square images (a quarter turn of {h}x{w} is {w}x{h}); "
                         "resize them first (ust.data.resize_images) or use a local kind such as 'stroke'.")
    clockwise = torch.from_numpy(np.random.default_rng(seed).random(len(images)) < 0.5).to(images.device)
    turned = torch.empty_like(images)
    turned[clockwise] = torch.rot90(images[clockwise], -1, dims=(-2, -1))
    turned[~clockwise] = torch.rot90(images[~clockwise], 1, dims=(-2, -1))
    return turned


def splice_halves(images: torch.Tensor, *, seed: int = 0) -> torch.Tensor:
    """Join every image to another image of the batch at a random cut: a subtle global anomaly.

    Introduced in the book's chapter *Results* ("A harder validation
    anomaly"). Image ``i`` keeps its pixels on one side of a straight cut,
    horizontal or vertical, at 35-65 % of the side; beyond the cut it takes
    the pixels of another image ``j != i`` of the batch. Both halves are
    normal; only their meeting is not: a stroke that does not continue, a
    horizon at two heights, half of one cat on half of another. Unlike a
    quarter turn on MNIST it does not make every image obvious, and unlike
    a stroke it changes the object, not a few pixels.

    Partner, direction, cut and which image gives which side are drawn
    from ``np.random.default_rng(seed)``: the same call gives the same
    result.

    Args:
        images: ``(N, C, H, W)``, ``N >= 2`` (the normal images to join).
        seed: Random seed.

    Returns:
        ``(N, C, H, W)``: spliced copies; every pixel comes from the same
        place of one of the input images, values are not changed.

    Raises:
        ValueError: Images that are not ``(N, C, H, W)``, fewer than two
            images, or a side shorter than 2 pixels.
    """
    check_images(images, name="images")
    n, _, h, w = images.shape
    if n < 2:
        raise ValueError(f"splice_halves joins pairs of images and needs at least 2; got {n}.")
    if min(h, w) < 2:
        raise ValueError(f"splice_halves cuts the images in two and needs sides of at least 2 pixels; got {h}x{w}.")
    rng = np.random.default_rng(seed)
    out = images.detach().clone()
    for i in range(n):
        j = int(rng.integers(0, n - 1))
        j += j >= i                                        # any image but i itself
        vertical = bool(rng.random() < 0.5)                # a vertical cut: left and right parts
        side = w if vertical else h
        cut = min(max(1, int(round(rng.uniform(*_SPLICE_CUT) * side))), side - 1)
        far = bool(rng.random() < 0.5)                     # the partner gives the part beyond the cut, or before it
        part = slice(cut, None) if far else slice(0, cut)
        if vertical:
            out[i, :, :, part] = images[j, :, :, part]
        else:
            out[i, :, part, :] = images[j, :, part, :]
    return out


def swap_halves(images: torch.Tensor, *, seed: int = 0) -> torch.Tensor:
    """Exchange every image's halves, top with bottom, left with right, or both: a global anomaly.

    Introduced in the book's chapter *Results* ("A harder validation
    anomaly"). The image is rolled by half its side (``torch.roll``) along
    the rows, the columns or both, drawn per image: for an even side that
    exchanges the quadrants (top-left with bottom-left, with top-right, or
    with bottom-right). Every patch that does not cross the seams is
    unchanged; what changes is where things are, as with the wrong object.

    Args:
        images: ``(N, C, H, W)``, sides of at least 2 pixels.
        seed: Random seed for the directions.

    Returns:
        ``(N, C, H, W)``: rolled copies; values are moved, not changed.

    Raises:
        ValueError: Images that are not ``(N, C, H, W)`` or a side shorter than 2 pixels.
    """
    check_images(images, name="images")
    h, w = images.shape[-2:]
    if min(h, w) < 2:
        raise ValueError(f"swap_halves exchanges halves and needs sides of at least 2 pixels; got {h}x{w}.")
    directions = np.random.default_rng(seed).integers(0, 3, size=len(images))   # rows, columns, both
    out = torch.empty_like(images)
    for d, (shift, dims) in enumerate((((h // 2,), (-2,)), ((w // 2,), (-1,)), ((h // 2, w // 2), (-2, -1)))):
        chosen = torch.from_numpy(directions == d).to(images.device)
        out[chosen] = torch.roll(images[chosen], shift, dims)
    return out


def global_anomalies(images: torch.Tensor, kind: str, *, seed: int = 0) -> torch.Tensor:
    """The global synthetic anomaly ``kind`` of every image, by name.

    Introduced in the book's chapter *Results* (validation without test data).

    Args:
        images: ``(N, C, H, W)`` normal images.
        kind: One of :data:`GLOBAL_KINDS`: ``"rotate"``
            (:func:`rotate_quarter_turns`), ``"splice"``
            (:func:`splice_halves`) or ``"swap"`` (:func:`swap_halves`).
        seed: Random seed.

    Returns:
        ``(N, C, H, W)``: the anomalous copies.

    Raises:
        ValueError: An unknown ``kind``, or images the kind cannot change
            (see each function).
    """
    makers = {"rotate": rotate_quarter_turns, "splice": splice_halves, "swap": swap_halves}
    if kind not in makers:
        raise ValueError(f"kind must be one of {GLOBAL_KINDS}; got {kind!r}. Local defects with masks are "
                         "drawn by add_synthetic_anomalies.")
    return makers[kind](images, seed=seed)
