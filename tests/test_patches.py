"""Teacher pretraining patches: crops, triplets, upscaling, reproducibility."""

import numpy as np
import pytest
import torch

from ust.data.patches import PatchSampler, load_natural_images


def _images(n=4, size=40):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_sample_shapes_and_values_come_from_the_images():
    images = _images()
    sampler = PatchSampler(images, 17, seed=0)
    patches = sampler.sample(8)
    assert patches.shape == (8, 3, 17, 17) and patches.dtype == torch.float32
    # every patch is an exact crop of one of the images
    crop = (patches[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    found = any((images[i, y:y + 17, x:x + 17] == crop).all()
                for i in range(4) for y in range(24) for x in range(24))
    assert found


def test_triplets_positive_is_a_shifted_noisy_copy_and_negative_another_image():
    images = np.zeros((3, 40, 40, 3), np.uint8)
    for i in range(3):
        images[i] = 80 * i  # each image one flat grey level: 0, 80, 160
    sampler = PatchSampler(images, 17, max_shift=3, noise_std=0.0, seed=1)
    anchor, positive, negative = sampler.triplets(16)
    assert torch.equal(anchor, positive)  # flat images, no noise: a shifted crop is identical
    assert not torch.isclose(anchor[:, 0, 0, 0], negative[:, 0, 0, 0]).any()  # always another image
    noisy = PatchSampler(images, 17, max_shift=3, noise_std=0.05, seed=1).triplets(16)[1]
    assert 0.02 < (noisy - anchor).std().item() < 0.06  # the noise (clipped at 0 for the black image)


def test_positive_translation_is_bounded():
    images = np.zeros((2, 60, 60, 3), np.uint8)
    images[:, :, :, 0] = np.arange(60, dtype=np.uint8)[None, None, :]  # red encodes the column
    images[:, :, :, 1] = np.arange(60, dtype=np.uint8)[None, :, None]  # green encodes the row
    sampler = PatchSampler(images, 17, max_shift=4, noise_std=0.0, seed=3)
    anchor, positive, _ = sampler.triplets(64)
    dx = ((positive[:, 0, 0, 0] - anchor[:, 0, 0, 0]) * 255).round()
    dy = ((positive[:, 1, 0, 0] - anchor[:, 1, 0, 0]) * 255).round()
    assert dx.abs().max() <= 4 and dy.abs().max() <= 4
    assert dx.abs().max() >= 1  # it does move


def test_small_images_are_upscaled_for_large_patches():
    sampler = PatchSampler(_images(size=64), 65, max_shift=4)
    assert sampler.scale == pytest.approx(73 / 64)
    assert sampler.images.shape[-1] == 73
    assert sampler.triplets(2)[0].shape == (2, 3, 65, 65)


def test_same_seed_same_patches():
    a = PatchSampler(_images(), 17, seed=5).sample(4)
    b = PatchSampler(_images(), 17, seed=5).sample(4)
    c = PatchSampler(_images(), 17, seed=6).sample(4)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_load_natural_images_from_arrays_and_folder(tmp_path):
    from PIL import Image

    gray = np.full((3, 20, 30), 7, np.uint8)
    np.savez(tmp_path / "x.npz", x_train=gray)
    loaded = load_natural_images(tmp_path / "x.npz")
    assert loaded.shape == (3, 20, 30, 3) and (loaded == 7).all()
    folder = tmp_path / "photos" / "sub"
    folder.mkdir(parents=True)
    Image.fromarray(np.full((50, 80, 3), 200, np.uint8)).save(folder / "a.png")
    Image.fromarray(np.full((30, 30, 3), 10, np.uint8)).save(folder / "b.jpg")
    photos = load_natural_images(tmp_path / "photos", image_size=16)
    assert photos.shape == (2, 16, 16, 3)
    assert photos[0].mean() == pytest.approx(200, abs=1)


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        load_natural_images(tmp_path / "missing.npz")
    np.savez(tmp_path / "bytes.npz", train_bytes=np.zeros(3, np.uint8))
    with pytest.raises(ValueError, match="unpack.py"):
        load_natural_images(tmp_path / "bytes.npz")
    with pytest.raises(ValueError, match="at least two images"):
        PatchSampler(_images(n=1), 17)
    with pytest.raises(ValueError, match=r"uint8 \(N, H, W, 3\)"):
        PatchSampler(np.zeros((2, 40, 40), np.uint8), 17)
