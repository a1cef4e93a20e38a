"""Metrics: image/pixel AUROC and PRO against hand-computed values and a brute-force PRO."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from ust.metrics import image_auroc, pixel_auroc, pro_auc, pro_curve, roc_curve

# --------------------------------------------------------------------------- image level


def test_image_auroc_by_hand():
    # (normal, anomalous) pairs: (0.1, 0.35) ok, (0.1, 0.8) ok, (0.4, 0.35) wrong, (0.4, 0.8) ok -> 3/4
    assert image_auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    # torch tensors and bool labels give the same; a tie counts one half
    assert image_auroc(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([False, False, True, True])) == 0.75
    assert image_auroc(np.array([0.5, 0.5]), np.array([0, 1])) == 0.5


def test_roc_curve_by_hand():
    fpr, tpr, thresholds = roc_curve(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1]))
    # threshold inf: nothing; 0.8: one anomaly; 0.4: + one normal; 0.35: + second anomaly; 0.1: everything
    assert thresholds[0] == np.inf
    np.testing.assert_allclose(thresholds[1:], [0.8, 0.4, 0.35, 0.1])
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 0.5, 1, 1])


def test_image_auroc_errors():
    with pytest.raises(ValueError, match=r"AUROC needs both normal \(0\) and anomalous \(1\) examples; "
                                         r"got only normal \(0\)"):
        image_auroc([0.1, 0.2], [0, 0])
    with pytest.raises(ValueError, match=r"got only anomalous \(1\)"):
        roc_curve([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="scores has 3 entries but labels has 2"):
        image_auroc([0.1, 0.2, 0.3], [0, 1])
    with pytest.raises(ValueError, match="must be 0 .normal. or 1"):
        image_auroc([0.1, 0.2, 0.3], [0, 1, 2])
    with pytest.raises(ValueError, match="1-D"):
        image_auroc(np.zeros((2, 3)), np.array([0, 1]))
    with pytest.raises(ValueError, match="NaN"):
        image_auroc([0.1, float("nan")], [0, 1])


# --------------------------------------------------------------------------- hand example for pixels and PRO

def two_regions():
    """One 6x8 image with two regions of different size.

    mask                scores (. = 0.1)
    A A . . . . . .     9 9 . . . 9 9 9     (9 = 0.9, 2 = 0.2)
    A A . . . . . .     9 9 . . . . . .
    . . . . . . . .     . . . . . . . .
    . . . . . . . .     . . . . . . . .
    . . B B B B . .     . . 9 9 2 2 . .
    . . B B B B . .     . . 9 9 2 2 . .

    Region A: 4 pixels, all at 0.9. Region B: 8 pixels, left half 0.9, right
    half 0.2. Normal pixels: 48 - 12 = 36, three of them at 0.9.
    """
    mask = np.zeros((1, 6, 8), dtype=bool)
    mask[0, 0:2, 0:2] = True
    mask[0, 4:6, 2:6] = True
    scores = np.full((1, 6, 8), 0.1)
    scores[0, 0:2, 0:2] = 0.9
    scores[0, 4:6, 2:4] = 0.9
    scores[0, 4:6, 4:6] = 0.2
    scores[0, 0, 5:8] = 0.9
    return scores, mask


def test_pro_curve_two_regions_by_hand():
    scores, mask = two_regions()
    fprs, pros = pro_curve(scores, mask, max_fpr=1.0)
    # t = 0.9: PRO = (4/4 + 4/8) / 2 = 0.75 (per region; the pixel overlap 8/12 would be 0.667), FPR = 3/36
    # t = 0.2: B's right half joins: PRO = 1, FPR still 3/36
    # t = 0.1: every pixel: FPR = 1
    np.testing.assert_allclose(fprs, [0, 1 / 12, 1 / 12, 1])
    np.testing.assert_allclose(pros, [0, 0.75, 1, 1])


def test_pro_auc_two_regions_by_hand():
    scores, mask = two_regions()
    fprs, pros = pro_curve(scores, mask)  # max_fpr = 0.3: the last point is (0.3, 1)
    np.testing.assert_allclose(fprs, [0, 1 / 12, 1 / 12, 0.3])
    np.testing.assert_allclose(pros, [0, 0.75, 1, 1])
    # area: (1/12) * (0 + 0.75) / 2 = 1/32, then (0.3 - 1/12) * 1 = 13/60; sum 119/480; / 0.3 = 119/144
    assert pro_auc(scores, mask) == pytest.approx(119 / 144)
    assert pro_auc(torch.from_numpy(scores).float(), torch.from_numpy(mask)) == pytest.approx(119 / 144)


def test_pixel_auroc_two_regions_by_hand():
    scores, mask = two_regions()
    # 12 anomalous x 36 normal pairs. The 8 anomalous pixels at 0.9 beat the 33 normal ones at 0.1 and tie
    # with 3: 8 * 34.5 = 276; the 4 at 0.2 beat 33: 132. (276 + 132) / 432 = 17/18
    assert pixel_auroc(scores, mask) == pytest.approx(17 / 18)


def test_pixel_auroc_perfect_and_inverted():
    mask = np.zeros((2, 4, 4), dtype=bool)
    mask[0, 1:3, 1:3] = True
    mask[1, 0, :] = True
    perfect = mask.astype(float)
    assert pixel_auroc(perfect, mask) == 1.0
    assert pixel_auroc(1 - perfect, mask) == 0.0
    assert pixel_auroc(torch.from_numpy(perfect), torch.from_numpy(mask)) == 1.0


def test_perfect_map_scores_one_at_every_max_fpr():
    rng = np.random.default_rng(0)
    mask = rng.random((3, 10, 10)) > 0.8
    noise = rng.random(mask.shape) * 0.5
    perfect = np.where(mask, 1.0 + noise, noise)  # every anomalous pixel above every normal one
    for max_fpr in (0.05, 0.3, 1.0):
        assert pro_auc(perfect, mask, max_fpr=max_fpr) == pytest.approx(1.0)
    assert pro_auc(-perfect, mask, max_fpr=0.3) == 0.0  # inverted: no region pixel before FPR 1


def test_partial_prediction_inside_the_region():
    # one 4-pixel region; the map finds its top half (score 1) and nothing else (score 0)
    mask = np.zeros((1, 4, 4), dtype=bool)
    mask[0, 1:3, 1:3] = True
    scores = np.zeros((1, 4, 4))
    scores[0, 1, 1:3] = 1.0
    fprs, pros = pro_curve(scores, mask, max_fpr=1.0)
    np.testing.assert_allclose(fprs, [0, 0, 1])    # t = 1: no false positive; t = 0: all
    np.testing.assert_allclose(pros, [0, 0.5, 1])
    # up to 0.3: from (0, 0.5) to the interpolated (0.3, 0.5 + 0.5 * 0.3 = 0.65): 0.3 * (0.5 + 0.65) / 2 = 0.1725
    assert pro_auc(scores, mask) == pytest.approx(0.1725 / 0.3)
    assert pro_auc(scores, mask, max_fpr=1.0) == pytest.approx(0.75)  # (0.5 + 1) / 2


def test_regions_are_8_connected():
    # a diagonal pair (0,0)-(1,1) is ONE region; (3,3)-(3,4) is another. The map finds (0,0) and (3,3)-(3,4).
    mask = np.zeros((1, 5, 5), dtype=bool)
    mask[0, 0, 0] = mask[0, 1, 1] = True
    mask[0, 3, 3:5] = True
    scores = np.zeros((1, 5, 5))
    scores[0, 0, 0] = 1.0
    scores[0, 3, 3:5] = 1.0
    fprs, pros = pro_curve(scores, mask, max_fpr=1.0)
    # 8-connected: (1/2 + 2/2) / 2 = 0.75; 4-connectivity would give (1 + 0 + 1) / 3 = 2/3
    assert fprs[1] == 0.0 and pros[1] == pytest.approx(0.75)


def test_regions_do_not_connect_across_images():
    # image 0: region of 1 pixel at (1,1), found; image 1: a 3-pixel column through (1,1), missed.
    # Separate regions: (1 + 0) / 2 = 0.5. Labelled as one 3-D blob it would be 1/4.
    mask = np.zeros((2, 3, 3), dtype=bool)
    mask[0, 1, 1] = True
    mask[1, :, 1] = True
    scores = np.zeros((2, 3, 3))
    scores[0, 1, 1] = 1.0
    fprs, pros = pro_curve(scores, mask, max_fpr=1.0)
    assert fprs[1] == 0.0 and pros[1] == pytest.approx(0.5)


# --------------------------------------------------------------------------- exactness against brute force

def brute_force_point(scores, mask, t):
    """Binarise at t, label each image separately, average the per-region overlap."""
    pred = scores >= t
    overlaps = []
    for img in range(mask.shape[0]):
        regions, n = ndimage.label(mask[img], structure=np.ones((3, 3)))
        overlaps += [pred[img][regions == k].mean() for k in range(1, n + 1)]
    return (pred & ~mask).sum() / (~mask).sum(), np.mean(overlaps)


@pytest.fixture
def random_case():
    rng = np.random.default_rng(1)
    mask = ndimage.binary_opening(rng.random((3, 9, 11)) > 0.55, structure=np.ones((1, 2, 2)))
    mask[2] = False  # one image without anomalies
    scores = np.round(rng.random(mask.shape) + 0.4 * mask, 1)  # rounding creates ties
    assert ndimage.label(mask[0], structure=np.ones((3, 3)))[1] >= 2
    return scores, mask


def test_exact_curve_equals_brute_force_at_every_unique_score(random_case):
    scores, mask = random_case
    fprs, pros = pro_curve(scores, mask, max_fpr=1.0)
    expected = [(0.0, 0.0)] + [brute_force_point(scores, mask, t) for t in np.unique(scores)[::-1]]
    np.testing.assert_allclose(np.c_[fprs, pros], expected, atol=1e-12)


def test_threshold_grid_equals_brute_force_at_its_thresholds(random_case):
    scores, mask = random_case
    fprs, pros = pro_curve(scores, mask, max_fpr=1.0, num_thresholds=7)
    grid = np.linspace(scores.max(), scores.min(), 7)
    expected = [(0.0, 0.0)] + [brute_force_point(scores, mask, t) for t in grid]
    np.testing.assert_allclose(np.c_[fprs, pros], expected, atol=1e-12)


def test_pro_auc_equals_trapezoid_of_brute_force_curve(random_case):
    scores, mask = random_case
    points = np.array([(0.0, 0.0)] + [brute_force_point(scores, mask, t) for t in np.unique(scores)[::-1]])
    f, p = points[:, 0], points[:, 1]
    keep = f <= 0.3
    p_at = np.interp(0.3, f, p)  # f is non-decreasing and the crossing segment is unique
    f_cut, p_cut = np.append(f[keep], 0.3), np.append(p[keep], p_at)
    expected = np.sum(np.diff(f_cut) * (p_cut[1:] + p_cut[:-1]) / 2) / 0.3
    assert pro_auc(scores, mask) == pytest.approx(expected, abs=1e-12)
    assert 0 < expected < 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_accepts_gpu_tensors():
    scores, mask = two_regions()
    cuda = torch.from_numpy(scores).cuda(), torch.from_numpy(mask).cuda()
    assert pro_auc(*cuda) == pytest.approx(119 / 144)
    assert pixel_auroc(*cuda) == pytest.approx(17 / 18)
    assert image_auroc(torch.tensor([0.1, 0.4, 0.35, 0.8]).cuda(), torch.tensor([0, 0, 1, 1]).cuda()) == 0.75


# --------------------------------------------------------------------------- errors

def test_pro_errors():
    scores, mask = two_regions()
    with pytest.raises(ValueError, match="at least one anomalous region"):
        pro_auc(scores, np.zeros_like(mask))
    with pytest.raises(ValueError, match="every pixel is in a mask"):
        pro_auc(scores, np.ones_like(mask))
    with pytest.raises(ValueError, match=r"shape \(1, 6, 8\) but masks has shape \(1, 6, 7\)"):
        pro_auc(scores, mask[..., :7])
    with pytest.raises(ValueError, match=r"score_maps\[None\]"):
        pro_curve(scores[0], mask)
    with pytest.raises(ValueError, match="mask > 0"):
        pro_auc(scores, mask.astype(np.uint8) * 255)
    with pytest.raises(ValueError, match=r"max_fpr must be in \(0, 1\]"):
        pro_auc(scores, mask, max_fpr=0.0)
    with pytest.raises(ValueError, match="num_thresholds"):
        pro_curve(scores, mask, num_thresholds=1)
    with pytest.raises(ValueError, match="got only normal"):
        pixel_auroc(scores, np.zeros_like(mask))
