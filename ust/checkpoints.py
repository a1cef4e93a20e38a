"""Checkpoints: weights plus metadata, written atomically, verified on load.

Introduced in the book's chapter *Student regression* (load a checkpoint
if present, otherwise train).

A ust checkpoint is a ``torch.save`` file holding a dictionary of plain
types and tensors only, so that it loads with ``weights_only=True``::

    {"format": "ust-checkpoint", "format_version": 1, "kind": "teacher" | "student_teacher",
     "metadata": {...}, "state_dict": {...}, "sha256": "<hex digest of the weights>"}

The metadata names the architecture (patch size, out_dim, in_channels),
the normalisation statistics, the backbone, the data, the settings and the
``ust`` version. Writing goes to a temporary file in the same folder that
is then renamed over the target (atomic on POSIX and Windows), so a crash
never leaves half a checkpoint. Loading checks the format, the SHA-256 of
the weights and the architecture, and says what to do when one fails.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from ._io import atomic_write
from .networks import PatchNet
from .scores import ScoreNormalization

__all__ = ["save_checkpoint", "load_checkpoint", "weights_sha256", "save_teacher", "load_teacher",
           "save_student_teacher", "load_student_teacher", "CheckpointError"]

_FORMAT = "ust-checkpoint"
_FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt, or does not fit what was asked."""


def weights_sha256(state_dict: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the tensors of a state dict (names, dtypes, shapes and bytes, in sorted order)."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def save_checkpoint(path: str | Path, kind: str, state_dict: dict[str, torch.Tensor],
                    metadata: dict[str, Any]) -> Path:
    """Write a checkpoint atomically (temporary file, then rename).

    Args:
        path: Target file (folders are created).
        kind: What it holds, e.g. ``"teacher"``.
        state_dict: The weights.
        metadata: Plain types only (str, int, float, bool, None, lists, dicts).

    Returns:
        The path written.
    """
    from . import __version__

    state = {k: v.detach().cpu() for k, v in state_dict.items()}
    payload = {"format": _FORMAT, "format_version": _FORMAT_VERSION, "kind": kind,
               "metadata": {**metadata, "ust_version": __version__}, "state_dict": state,
               "sha256": weights_sha256(state)}
    return atomic_write(path, lambda handle: torch.save(payload, handle), binary=True)


def load_checkpoint(path: str | Path, kind: str | None = None) -> dict[str, Any]:
    """Read and verify a checkpoint.

    Args:
        path: The file.
        kind: If given, the kind it must hold.

    Returns:
        The payload dictionary (``metadata``, ``state_dict``, ...).

    Raises:
        CheckpointError: Missing file, unreadable or foreign file, wrong kind,
            or weights whose SHA-256 does not match (corruption).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}: train one first (see `python -m ust --help`) or "
                              "check the path.")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"{path} is corrupt or not a ust checkpoint ({type(err).__name__}: {err}). "
                              "Delete it and train or copy it again.") from None
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        raise CheckpointError(f"{path} is not a ust checkpoint (no 'format': '{_FORMAT}' entry). "
                              "Was it written by another program?")
    if payload.get("format_version", 0) > _FORMAT_VERSION:
        raise CheckpointError(f"{path} was written by a newer ust (format {payload['format_version']}); upgrade "
                              "ust to read it.")
    if kind is not None and payload.get("kind") != kind:
        raise CheckpointError(f"{path} holds a {payload.get('kind')!r} checkpoint, but a {kind!r} one is needed.")
    if weights_sha256(payload["state_dict"]) != payload.get("sha256"):
        raise CheckpointError(f"{path} is corrupt: the SHA-256 of its weights does not match the one recorded "
                              "when it was written. Delete it and train or copy it again.")
    return payload


def _architecture(net: PatchNet) -> dict[str, int]:
    return {"patch_size": net.patch_size, "out_dim": net.out_dim, "in_channels": net.in_channels}


def _check_architecture(path: Path, metadata: dict, expected: dict[str, Any]) -> None:
    for key, value in expected.items():
        if value is not None and metadata.get(key) != value:
            raise CheckpointError(f"{path} holds a network with {key}={metadata.get(key)}, but {key}={value} was "
                                  f"asked for. Use a checkpoint made for {key}={value}, or ask for "
                                  f"{key}={metadata.get(key)}.")


def save_teacher(path: str | Path, teacher: PatchNet, metadata: dict[str, Any] | None = None,
                 half: bool = False) -> Path:
    """Save a teacher with its architecture in the metadata.

    Args:
        path: Target file.
        teacher: The network.
        metadata: Extra facts (data, losses, settings, timings).
        half: Store the weights in float16 (half the size; loaded as float32).
    """
    state = teacher.state_dict()
    if half:
        state = {k: v.half() for k, v in state.items()}
    return save_checkpoint(path, "teacher", state, {**(metadata or {}), **_architecture(teacher)})


def load_teacher(path: str | Path, patch_size: int | None = None, out_dim: int | None = None,
                 in_channels: int | None = None) -> tuple[PatchNet, dict[str, Any]]:
    """Load a teacher saved by :func:`save_teacher`.

    Args:
        path: The file.
        patch_size, out_dim, in_channels: What the caller expects (checked).

    Returns:
        ``(teacher, metadata)``, the teacher in eval mode, float32.

    Raises:
        CheckpointError: See :func:`load_checkpoint`, or an architecture
            different from the one asked for.
    """
    path = Path(path)
    payload = load_checkpoint(path, "teacher")
    meta = payload["metadata"]
    _check_architecture(path, meta, {"patch_size": patch_size, "out_dim": out_dim, "in_channels": in_channels})
    teacher = PatchNet(meta["patch_size"], out_dim=meta["out_dim"], in_channels=meta["in_channels"])
    try:
        teacher.load_state_dict({k: v.float() for k, v in payload["state_dict"].items()})
    except RuntimeError as err:
        raise CheckpointError(f"{path}: the weights do not fit PatchNet(p={meta['patch_size']}): {err}") from None
    return teacher.eval(), meta


def save_student_teacher(path: str | Path, model, metadata: dict[str, Any] | None = None) -> Path:
    """Save a :class:`~ust.model.StudentTeacher` (teacher, students, statistics, score normalisation)."""
    meta = {**(metadata or {}), **_architecture(model.teacher), "n_students": model.n_students,
            "padding": model.padding,
            "normalization": model.normalization.to_dict() if model.normalization is not None else None}
    return save_checkpoint(path, "student_teacher", model.state_dict(), meta)


def load_student_teacher(path: str | Path, patch_size: int | None = None):
    """Load a :class:`~ust.model.StudentTeacher` saved by :func:`save_student_teacher`.

    Returns:
        ``(model, metadata)``, the model in eval mode on the CPU.

    Raises:
        CheckpointError: See :func:`load_checkpoint`, or a different patch size.
    """
    from .model import StudentTeacher
    from .students import make_students

    path = Path(path)
    payload = load_checkpoint(path, "student_teacher")
    meta = payload["metadata"]
    _check_architecture(path, meta, {"patch_size": patch_size})
    p, d, c = meta["patch_size"], meta["out_dim"], meta["in_channels"]
    teacher = PatchNet(p, out_dim=d, in_channels=c)
    students = make_students(p, meta["n_students"], out_dim=d, in_channels=c)
    norm = ScoreNormalization(**meta["normalization"]) if meta.get("normalization") else None
    model = StudentTeacher(teacher, students, torch.zeros(d), torch.ones(d), meta.get("padding", "zeros"), norm)
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as err:
        raise CheckpointError(f"{path}: the weights do not fit a StudentTeacher(p={p}, M={meta['n_students']}): "
                              f"{err}") from None
    return model.eval(), meta
