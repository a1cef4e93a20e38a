"""Atomic file writing and empty cells, shared by checkpoints and result tables."""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Callable

__all__ = ["atomic_write", "is_missing"]


def atomic_write(path: str | os.PathLike, write: Callable[[IO[Any]], None], binary: bool = False) -> Path:
    """Write ``path`` all or nothing: into a temporary file in the same folder, then rename.

    The rename is atomic on POSIX and Windows, so readers see the old file
    or the new one, never half of it; a failure removes the temporary file
    and leaves the old file untouched.

    Args:
        path: Target file (its folder is created).
        write: Called with the open temporary file.
        binary: Open it in binary mode (else UTF-8 text, ``newline=""``).

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; give it the usual permissions
        with (os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", newline="", encoding="utf-8")) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def is_missing(value: Any) -> bool:
    """None or NaN: a value not measured (e.g. a column added after a row was written).

    Result tables write such values as empty cells and read them back as NaN.
    """
    return value is None or (isinstance(value, float) and math.isnan(value))
