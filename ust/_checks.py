"""Input validation shared by every public function of :mod:`ust`.

Each check raises :class:`ValueError` whose message says what was passed and
what to pass instead, so that a student sees the fix rather than a stack of
PyTorch internals.
"""

from __future__ import annotations

import torch

__all__ = ["check_images", "check_same_shape", "check_descriptors"]


def check_images(x: torch.Tensor, *, channels: int | None = None, min_size: int | None = None,
                 name: str = "images", what: str = "") -> None:
    """Check that ``x`` is a float batch of images of shape ``(B, C, H, W)``.

    Args:
        x: The tensor to check.
        channels: Required number of channels ``C`` (``None``: any).
        min_size: Required minimum of ``H`` and ``W`` (``None``: any).
        name: How the argument is called in the message.
        what: Extra hint appended to the size message (e.g. how to resize).

    Raises:
        ValueError: If ``x`` is not a 4-D floating tensor with the required
            channels and size.
    """
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape (B, C, H, W); got {type(x).__name__}. "
                         "Convert with torch.as_tensor(...) first.")
    if x.dim() != 4:
        hint = ""
        if x.dim() == 3:
            hint = " For a single image use x.unsqueeze(0)."
        elif x.dim() == 2:
            hint = " For a single grayscale image use x[None, None]."
        raise ValueError(f"{name} must be 4-D (B, C, H, W); got {x.dim()}-D shape {tuple(x.shape)}.{hint}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor with values in [0, 1]; got dtype {x.dtype}. "
                         "Use x.float() / 255 for uint8 images.")
    if channels is not None and x.shape[1] != channels:
        hint = ""
        if x.shape[1] == 1 and channels == 3:
            hint = " Grayscale images enter RGB networks as three equal channels: x.expand(-1, 3, -1, -1)."
        elif channels == 1 and x.shape[1] == 3:
            hint = " Convert to grayscale, e.g. x.mean(1, keepdim=True), or build the network with in_channels=3."
        raise ValueError(f"{name} have {x.shape[1]} channels but the network expects {channels} "
                         f"(shape {tuple(x.shape)}).{hint}")
    if min_size is not None and min(x.shape[-2:]) < min_size:
        raise ValueError(f"{name} of size {x.shape[-2]}x{x.shape[-1]} are smaller than the required "
                         f"{min_size}x{min_size}.{(' ' + what) if what else ''}")


def check_same_shape(a: torch.Tensor, b: torch.Tensor, names: tuple[str, str]) -> None:
    """Raise ``ValueError`` unless ``a`` and ``b`` have the same shape."""
    if a.shape != b.shape:
        raise ValueError(f"{names[0]} has shape {tuple(a.shape)} but {names[1]} has shape {tuple(b.shape)}; "
                         "they must match.")


def check_descriptors(x: torch.Tensor, name: str = "descriptors") -> torch.Tensor:
    """Return descriptors as a 2-D ``(N, D)`` matrix.

    Accepts ``(N, D)``, ``(N, D, 1, 1)`` (a :class:`~ust.PatchNet` output on
    patches) or dense maps ``(B, D, H, W)``, whose pixels become rows.

    Raises:
        ValueError: For any other number of dimensions.
    """
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor; got {type(x).__name__}.")
    if x.dim() == 2:
        return x
    if x.dim() == 4:
        return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])
    raise ValueError(f"{name} must have shape (N, D) or (B, D, H, W); got {x.dim()}-D shape {tuple(x.shape)}.")
