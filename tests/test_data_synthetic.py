"""Synthetic anomalies: masks cover every change, contrasting values, reproducibility; the global kinds."""

import pytest
import torch

from ust.data import (GLOBAL_KINDS, SYNTHETIC_KINDS, add_synthetic_anomalies, global_anomalies, rotate_quarter_turns,
                      splice_halves, swap_halves)


def _images(n=6, c=1, h=28, w=28, seed=0):
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("kind", SYNTHETIC_KINDS)
def test_masks_cover_every_change(kind):
    images = _images(c=3, h=32, w=40)
    before = images.clone()
    out, masks = add_synthetic_anomalies(images, kind=kind, seed=0)
    assert out.shape == images.shape and out.dtype == images.dtype
    assert masks.shape == (6, 32, 40) and masks.dtype == torch.bool
    assert torch.equal(images, before), "the input must not be modified"
    assert masks.flatten(1).any(1).all(), "every image gets a defect"
    changed = (out != images).any(1)
    assert not (changed & ~masks).any(), "a pixel outside the mask changed"
    assert changed.flatten(1).any(1).all()
    assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("kind", SYNTHETIC_KINDS)
def test_reproducible_with_the_seed(kind):
    images = _images()
    a, ma = add_synthetic_anomalies(images, kind=kind, seed=3)
    b, mb = add_synthetic_anomalies(images, kind=kind, seed=3)
    c, mc = add_synthetic_anomalies(images, kind=kind, seed=4)
    assert torch.equal(a, b) and torch.equal(ma, mb)
    assert not torch.equal(ma, mc)


@pytest.mark.parametrize("kind", ["stroke", "blob"])
def test_contrasting_intensity_on_black_and_white(kind):
    black = torch.zeros(4, 1, 28, 28)
    out, masks = add_synthetic_anomalies(black, kind=kind)
    assert torch.equal(out[:, 0] > 0, masks)  # every mask pixel drawn, nothing else
    assert out[:, 0][masks].min() >= 0.8
    white = torch.ones(4, 3, 28, 28)
    out, masks = add_synthetic_anomalies(white, kind=kind)
    assert torch.equal((out < 1).all(1), masks) and out.permute(1, 0, 2, 3)[:, masks].max() <= 0.2


def test_defect_sizes_relative_to_the_side():
    black = torch.zeros(20, 1, 100, 100)
    _, blobs = add_synthetic_anomalies(black, kind="blob")
    for m in blobs:  # diameters 15-35 % of the side, wholly inside the image
        rows, cols = m.any(1).nonzero(), m.any(0).nonzero()
        assert max(rows.max() - rows.min(), cols.max() - cols.min()) + 1 <= 36
        assert not (m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any())
    _, strokes = add_synthetic_anomalies(black, kind="stroke")
    areas = strokes.flatten(1).sum(1)
    assert areas.min() >= 25 * 6 * 0.5 and areas.max() <= (50 + 12) * 12 * 1.5  # ~length x width


def test_paste_from_source_is_a_rectangle_of_source_values():
    target = torch.zeros(5, 3, 30, 30)
    source = torch.full((2, 3, 30, 30), 0.7)
    out, masks = add_synthetic_anomalies(target, kind="paste", source=source, seed=1)
    for o, m in zip(out, masks):
        rows, cols = m.any(1).nonzero().flatten(), m.any(0).nonzero().flatten()
        h, w = len(rows), len(cols)
        assert m.sum() == h * w and rows.max() - rows.min() + 1 == h  # a filled rectangle
        assert 0.15 * 30 - 1 <= h <= 0.35 * 30 + 1 and 0.15 * 30 - 1 <= w <= 0.35 * 30 + 1
        assert torch.equal(o[:, m], torch.full((3, h * w), 0.7)) and (o[:, ~m] == 0).all()


def test_paste_within_the_batch_takes_another_image():
    images = torch.stack([torch.full((1, 16, 16), v) for v in (0.1, 0.5, 0.9)])
    out, masks = add_synthetic_anomalies(images, kind="paste", seed=0)
    for i in range(3):
        pasted = out[i, 0][masks[i]].unique()
        assert len(pasted) == 1 and pasted.item() != images[i, 0, 0, 0].item()


def test_errors():
    with pytest.raises(ValueError, match="kind must be one of"):
        add_synthetic_anomalies(_images(), kind="scratch")
    with pytest.raises(ValueError, match=r"values in \[0, 1\].*255"):
        add_synthetic_anomalies(_images() * 255)
    with pytest.raises(ValueError, match="pass source="):
        add_synthetic_anomalies(_images(n=1), kind="paste")
    with pytest.raises(ValueError, match="only used with kind='paste'"):
        add_synthetic_anomalies(_images(), kind="blob", source=_images())
    with pytest.raises(ValueError, match="source have 1 channels but the network expects 3"):
        add_synthetic_anomalies(_images(c=3), kind="paste", source=_images(c=1))


def test_quarter_turns_by_hand():
    image = torch.tensor([[1.0, 2.0], [3.0, 4.0]])[None, None]              # (1, 1, 2, 2)
    anticlockwise = torch.tensor([[2.0, 4.0], [1.0, 3.0]])                   # the top row goes to the left column
    clockwise = torch.tensor([[3.0, 1.0], [4.0, 2.0]])
    turned = rotate_quarter_turns(image.expand(64, 3, 2, 2).clone(), seed=0)
    assert turned.shape == (64, 3, 2, 2)
    is_anti = (turned == anticlockwise).flatten(1).all(1)
    is_clock = (turned == clockwise).flatten(1).all(1)
    assert (is_anti ^ is_clock).all(), "every image is turned one way or the other, all channels alike"
    assert 16 < is_clock.sum() < 48, "both directions occur"
    half_turn = image.flip(-1).flip(-2)                                      # the same seed turns the same way again
    assert torch.equal(rotate_quarter_turns(turned, seed=0), half_turn.expand(64, 3, 2, 2))


def test_quarter_turns_keep_values_repeat_with_the_seed_and_need_square_images():
    images = _images(n=8, c=3)
    turned = rotate_quarter_turns(images, seed=5)
    assert torch.equal(turned, rotate_quarter_turns(images, seed=5))
    assert not torch.equal(turned, rotate_quarter_turns(images, seed=6))
    assert torch.equal(turned.flatten(1).sort(1).values, images.flatten(1).sort(1).values), "values only move"
    assert not torch.equal(turned, images)
    with pytest.raises(ValueError, match=r"square images .*28x40 is 40x28.*resize_images"):
        rotate_quarter_turns(_images(w=40))
    with pytest.raises(ValueError, match="4-D"):
        rotate_quarter_turns(images[0])


def _labelled(n, c=2, h=10, w=10):
    """Image k holds 1000 * k + its pixel's index: every output pixel tells which image and place it came from."""
    index = torch.arange(h * w, dtype=torch.float64).reshape(1, 1, h, w)
    return (1000.0 * torch.arange(n, dtype=torch.float64).reshape(n, 1, 1, 1) + index).expand(n, c, h, w).clone()


def test_splice_halves_joins_each_image_to_another_at_one_straight_cut():
    n, h, w = 40, 10, 10
    images = _labelled(n, h=h, w=w)
    out = splice_halves(images, seed=3)
    assert out.shape == images.shape and torch.equal(out[:, 0], out[:, 1]), "all channels alike"
    source, place = (out[:, 0] // 1000).long(), out[:, 0] % 1000
    assert torch.equal(place, images[:, 0] % 1000), "every pixel stays where it was"
    directions, far_sides = set(), set()
    for i in range(n):
        own = source[i] == i
        partners = source[i][~own].unique()
        assert len(partners) == 1 and partners.item() != i, "one other image gives the rest"
        rows, cols = own.all(1), own.all(0)                # the cut is straight: whole rows or whole columns
        horizontal = torch.equal(own, rows[:, None].expand(h, w))
        vertical = torch.equal(own, cols[None, :].expand(h, w))
        assert horizontal != vertical, i
        kept = rows if horizontal else cols
        cut = int(kept.sum()) if kept[0] else int((~kept).sum())      # pixels before the cut
        assert torch.equal(kept, torch.arange(len(kept)) < cut) or torch.equal(kept, torch.arange(len(kept)) >= cut)
        assert round(0.35 * 10) <= cut <= round(0.65 * 10), cut        # at 35-65 % of the side
        directions.add(horizontal)
        far_sides.add(bool(kept[0]))
    assert directions == {True, False} and far_sides == {True, False}, "both cuts, both sides occur"
    assert torch.equal(splice_halves(images, seed=3), out)
    assert not torch.equal(splice_halves(images, seed=4), out)


def test_splice_halves_refuses_one_image_and_one_pixel_sides():
    with pytest.raises(ValueError, match="needs at least 2; got 1"):
        splice_halves(_images(n=1))
    with pytest.raises(ValueError, match="sides of at least 2 pixels; got 1x5"):
        splice_halves(_images(h=1, w=5))


def test_swap_halves_by_hand():
    image = torch.tensor([[1.0, 2.0], [3.0, 4.0]])[None, None].expand(60, 3, 2, 2).clone()
    out = swap_halves(image, seed=0)
    rows, cols, both = (torch.tensor(t) for t in ([[3.0, 4.0], [1.0, 2.0]], [[2.0, 1.0], [4.0, 3.0]],
                                                  [[4.0, 3.0], [2.0, 1.0]]))
    kinds = torch.stack([(out == t).flatten(1).all(1) for t in (rows, cols, both)])   # (3, 60)
    assert (kinds.sum(0) == 1).all(), "every image is swapped in exactly one of the three ways"
    assert (kinds.sum(1) > 10).all(), "all three ways occur"
    assert torch.equal(swap_halves(out, seed=0), image), "a half roll twice, the same way, is no change"


def test_swap_halves_exchanges_quadrants_and_handles_odd_sides():
    images = _images(n=12, c=3, h=8, w=8)
    out = swap_halves(images, seed=1)
    q = lambda x, r, c: x[..., 4 * r:4 * r + 4, 4 * c:4 * c + 4]   # noqa: E731 (quadrant r, c)
    for i in range(12):
        moved = {(r, c): next((rr, cc) for rr in range(2) for cc in range(2)
                              if torch.equal(q(out[i], r, c), q(images[i], rr, cc)))
                 for r in range(2) for c in range(2)}
        assert sorted(moved.values()) == sorted(moved), "the four quadrants, permuted"
        assert moved != {k: k for k in moved}, "and never left in place"
    odd = _images(n=5, h=7, w=9)
    swapped = swap_halves(odd, seed=2)
    assert torch.equal(swapped.flatten(1).sort(1).values, odd.flatten(1).sort(1).values), "values only move"
    with pytest.raises(ValueError, match="sides of at least 2 pixels; got 28x1"):
        swap_halves(_images(w=1))


@pytest.mark.parametrize("kind, make", [("rotate", rotate_quarter_turns), ("splice", splice_halves),
                                        ("swap", swap_halves)])
def test_global_anomalies_by_name(kind, make):
    images = _images(n=6, c=3)
    assert kind in GLOBAL_KINDS
    assert torch.equal(global_anomalies(images, kind, seed=7), make(images, seed=7))
    with pytest.raises(ValueError,
                       match=r"kind must be one of \('rotate', 'splice', 'swap'\).*add_synthetic_anomalies"):
        global_anomalies(images, "stroke")
