"""Pretrained networks P: real ImageNet weights offline, normalisation, errors."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ust.backbones import BackboneUnavailableError, imagenet_categories, load_backbone


@pytest.fixture(scope="module")
def lite0():
    return load_backbone("efficientnet_lite0")


def _sample_photo(index: int) -> torch.Tensor:
    from sklearn.datasets import load_sample_images

    image = load_sample_images().images[index]  # 0: Chinese temple, 1: flower
    x = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 255
    return F.interpolate(x, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)


def _top5(net, x) -> list[str]:
    categories = imagenet_categories()
    with torch.no_grad():
        return [categories[i] for i in net.logits(x)[0].topk(5).indices]


def test_efficientnet_lite0_recognises_sample_photos(lite0):
    temple = _top5(lite0, _sample_photo(0))
    flower = _top5(lite0, _sample_photo(1))
    assert {"palace", "monastery", "bell cote", "church", "castle", "dome", "boathouse"} & set(temple[:3]), temple
    assert flower[0] == "daisy", flower


def test_lite_normalisation_matters(lite0):
    """With ImageNet mean/std instead of (255 x - 127) / 128 the flower is no longer a daisy."""
    x = _sample_photo(1)
    assert _top5(lite0, x)[0] == "daisy"
    lite0.normalization = "imagenet"
    try:
        assert _top5(lite0, x)[0] != "daisy"
    finally:
        lite0.normalization = "lite"


def test_lite_normalisation_values(lite0):
    x = torch.tensor([0.0, 127 / 255, 1.0]).reshape(1, 3, 1, 1)
    assert torch.allclose(lite0.normalize(x).flatten(), torch.tensor([-127 / 128, 0.0, 1.0]), atol=1e-6)


def test_features_per_patch(lite0):
    out = lite0(torch.rand(4, 3, 17, 17))
    assert out.shape == (4, 1280)
    assert not out.requires_grad
    lite0.train()
    assert not lite0.training  # stays in eval mode: batch-norm statistics are fixed


def test_unknown_backbone():
    with pytest.raises(ValueError, match="backbone must be one of"):
        load_backbone("vgg16")


def test_resnet18_offline_error_names_the_alternative(monkeypatch):
    import torchvision

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(torchvision.models, "resnet18", offline)
    with pytest.raises(BackboneUnavailableError, match="efficientnet_lite0"):
        load_backbone("resnet18")


def test_wrong_channels(lite0):
    with pytest.raises(ValueError, match="three equal channels"):
        lite0(torch.rand(1, 1, 32, 32))
