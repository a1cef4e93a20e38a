"""MVTec AD loader on a tiny generated fixture in the original folder layout."""

import numpy as np
import pytest
import torch
from PIL import Image

from ust.data import load_mvtec, mvtec_categories


def _save(path, array, mode):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path)


@pytest.fixture
def mvtec(tmp_path):
    """bottle (RGB 16x16): 2 train, test broken/000, broken/001, good/000; grid (gray): 1 train, 1 good test."""
    bottle = tmp_path / "bottle"
    for i in range(2):
        img = np.zeros((16, 16, 3), np.uint8)
        img[0, 0] = (255, 51, 0)
        img[:, :, 2] = i
        _save(bottle / "train" / "good" / f"00{i}.png", img, "RGB")
    _save(bottle / "test" / "good" / "000.png", np.full((16, 16, 3), 102, np.uint8), "RGB")
    for i in range(2):
        _save(bottle / "test" / "broken" / f"00{i}.png", np.full((16, 16, 3), 204, np.uint8), "RGB")
        mask = np.zeros((16, 16), np.uint8)
        mask[4:8, 2:6] = 255
        _save(bottle / "ground_truth" / "broken" / f"00{i}_mask.png", mask, "L")
    grid = tmp_path / "grid"
    _save(grid / "train" / "good" / "000.png", np.full((16, 16), 51, np.uint8), "L")
    _save(grid / "test" / "good" / "000.png", np.full((16, 16), 255, np.uint8), "L")
    return tmp_path


def test_layout_labels_masks_and_values(mvtec):
    d = load_mvtec(mvtec, "bottle")
    assert d.train.shape == (2, 3, 16, 16) and d.test.shape == (3, 3, 16, 16) and d.train.dtype == torch.float32
    assert d.train[0, :, 0, 0].tolist() == pytest.approx([1.0, 0.2, 0.0])
    assert d.test_defects == ("broken", "broken", "good") and d.test_labels.tolist() == [1, 1, 0]
    assert d.test[2].unique().item() == pytest.approx(0.4)  # 102 / 255
    expected = torch.zeros(16, 16, dtype=torch.bool)
    expected[4:8, 2:6] = True
    assert d.masks.dtype == torch.bool and torch.equal(d.masks[0], expected) and not d.masks[2].any()
    assert d.test_files[0].endswith("broken/000.png") and d.category == "bottle"
    assert "2 defect-free training images" in d.description and "1 good, 2 defective" in d.description
    assert mvtec_categories(mvtec) == ["bottle", "grid"]


def test_resize_keeps_masks_binary_and_aligned(mvtec):
    d = load_mvtec(mvtec, "bottle", image_size=8, channels=1)
    assert d.train.shape == (2, 1, 8, 8) and d.masks.shape == (3, 8, 8)
    # nearest (pixel-centre aligned) halving samples source pixel 2i + 1: rows 5, 7 and columns 3, 5 are in the mask
    expected = torch.zeros(8, 8, dtype=torch.bool)
    expected[2:4, 1:3] = True
    assert torch.equal(d.masks[0], expected)
    assert d.test[0].unique().item() == pytest.approx(204 / 255)  # a constant image stays constant


def test_grayscale_category_as_three_equal_channels(mvtec):
    d = load_mvtec(mvtec, "grid")
    assert d.train.shape == (1, 3, 16, 16) and torch.equal(d.train[:, 0], d.train[:, 2])
    assert d.train.unique().item() == pytest.approx(0.2) and d.test_labels.tolist() == [0]
    assert load_mvtec(mvtec, "grid", channels=None).train.shape == (1, 1, 16, 16)


def test_errors(mvtec):
    with pytest.raises(ValueError, match="does not exist.*mvtec.com"):
        load_mvtec(mvtec / "nowhere", "bottle")
    with pytest.raises(ValueError, match="no MVTec AD category 'carpet'.*Categories found there: bottle, grid"):
        load_mvtec(mvtec, "carpet")
    (mvtec / "bottle" / "ground_truth" / "broken" / "001_mask.png").unlink()
    with pytest.raises(ValueError, match=r"broken/001.png has no mask: expected .*ground_truth/broken/001_mask.png"):
        load_mvtec(mvtec, "bottle")
