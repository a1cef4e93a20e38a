"""Pretrained teachers that ship with ust (see MODEL_CARD.md in this folder).

Introduced in the book's chapter *Teacher losses*.

``pretrained_teacher(p)`` loads, offline, a teacher for patch size ``p``
pretrained on 47,500 Tiny-ImageNet photos by distilling EfficientNet-Lite0
(knowledge distillation plus descriptor compactness, Sec. 3.1). The variant
``"kmc"`` adds the metric-learning loss (for the ablation). Each file's
SHA-256 and metadata are checked on load against ``manifest.json``.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

from ..checkpoints import CheckpointError, load_teacher
from ..networks import PATCH_SIZES, PatchNet

__all__ = ["pretrained_teacher", "available_teachers", "write_manifest", "WEIGHTS_DIR", "TEACHER_VARIANTS"]

#: Folder of the shipped weights.
WEIGHTS_DIR = Path(__file__).resolve().parent
#: ``"kc"``: L_k + L_c (the default); ``"kmc"``: L_k + L_m + L_c.
TEACHER_VARIANTS = ("kc", "kmc")


@lru_cache(maxsize=None)
def _manifest() -> dict:
    path = WEIGHTS_DIR / "manifest.json"
    if not path.is_file():
        return {}
    return json.loads(path.read_text())


def _file_name(patch_size: int, variant: str) -> str:
    return f"teacher_p{patch_size}_{variant}.pt"


def available_teachers() -> list[tuple[int, str]]:
    """``(patch_size, variant)`` pairs whose weights ship with this installation."""
    return sorted((int(p), v) for p, v in (key.split("/") for key in _manifest()))


def pretrained_teacher(patch_size: int, variant: str = "kc") -> PatchNet:
    """Load a shipped, pretrained teacher (offline).

    Args:
        patch_size: 17, 33 or 65.
        variant: ``"kc"`` (distillation + compactness) or ``"kmc"`` (plus
            metric learning).

    Returns:
        The teacher :class:`~ust.PatchNet` in eval mode (float32; stored in
        float16). Its metadata is in ``teacher.metadata``, and
        ``teacher.name`` is ``"pretrained:<p>:<variant>"`` (result tables use it).

    Raises:
        ValueError: Unsupported patch size or variant.
        CheckpointError: A file that is missing or does not match its
            recorded SHA-256 (reinstall ust).
    """
    if patch_size not in PATCH_SIZES:
        raise ValueError(f"patch_size must be one of {PATCH_SIZES}; got {patch_size!r}.")
    if variant not in TEACHER_VARIANTS:
        raise ValueError(f"variant must be one of {TEACHER_VARIANTS}; got {variant!r}.")
    entry = _manifest().get(f"{patch_size}/{variant}")
    path = WEIGHTS_DIR / _file_name(patch_size, variant)
    if entry is None or not path.is_file():
        shipped = ", ".join(f"p={p} {v}" for p, v in available_teachers()) or "none"
        raise CheckpointError(f"no shipped teacher for p={patch_size}, variant {variant!r} (shipped: {shipped}). "
                              "Pretrain one with `python -m ust pretrain-teacher` (see MODEL_CARD.md).")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != entry["file_sha256"]:
        raise CheckpointError(f"{path} does not match the SHA-256 recorded in manifest.json: the file is corrupt "
                              "or was replaced. Reinstall ust.")
    teacher, metadata = load_teacher(path, patch_size=patch_size)
    teacher.metadata = metadata
    teacher.name = f"pretrained:{patch_size}:{variant}"
    return teacher


def write_manifest(folder: Path = WEIGHTS_DIR) -> dict:
    """Record the SHA-256 and key metadata of every ``teacher_p*_*.pt`` in ``folder``.

    Maintainers run ``python -m ust.weights`` after pretraining new teachers;
    :func:`pretrained_teacher` refuses files that do not match.
    """
    from ..checkpoints import load_checkpoint

    manifest = {}
    for path in sorted(Path(folder).glob("teacher_p*_*.pt")):
        meta = load_checkpoint(path, "teacher")["metadata"]
        variant = path.stem.split("_")[-1]
        manifest[f"{meta['patch_size']}/{variant}"] = {
            "file": path.name,
            "file_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "bytes": path.stat().st_size,
            "final_losses": meta.get("final_losses"),
            "seconds": meta.get("seconds"),
            "command": meta.get("command"),
        }
    (Path(folder) / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    _manifest.cache_clear()
    return manifest
