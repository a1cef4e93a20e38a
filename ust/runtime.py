"""Device choice and seeding: one seed controls everything.

Introduced in the book's chapter *Introduction* (the setup cell).
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

__all__ = ["select_device", "seed_everything"]


def select_device(device: str | torch.device | None = None) -> torch.device:
    """The device to train on: the argument, else CUDA, else Apple MPS, else CPU.

    Args:
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``, a
            :class:`torch.device`, or ``None`` for the automatic choice.
            The environment variable ``UST_DEVICE`` overrides the automatic
            choice (not an explicit argument).

    Raises:
        ValueError: A requested device that this machine does not have.
    """
    if device is None:
        device = os.environ.get("UST_DEVICE") or None
    if device is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"unknown device {device!r}: use 'cpu', 'cuda', 'cuda:N' or 'mps'.") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but no CUDA GPU is available here; use device='cpu' or None.")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("device 'mps' was requested but Apple's MPS is not available here; use device='cpu' or None.")
    return device


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and PyTorch; return a CPU generator seeded alike.

    With the same seed, CPU runs of ust's training loops repeat exactly
    (the loops draw their randomness from the returned generator and from
    seeded modules). GPU runs repeat up to the non-determinism of cuDNN.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
