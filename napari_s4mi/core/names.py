"""File names against the file system's limit: a clear error before a write, short names for temporary files."""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

from .errors import InputError

DEFAULT_NAME_MAX = 255  # bytes, most Linux/macOS file systems


def name_max(folder: Path) -> int:
    """The longest file name (bytes) the file system of ``folder`` (or its nearest existing parent) allows."""
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            with contextlib.suppress(OSError, ValueError, AttributeError):
                return int(os.pathconf(candidate, "PC_NAME_MAX"))
            break
    return DEFAULT_NAME_MAX


def name_bytes(name: str) -> int:
    """The length of a file name in bytes as the file system sees it."""
    return len(os.fsencode(name))


def check_name_fits(path: Path, fix: str = "use a shorter name") -> None:
    """InputError (one line, naming the file and ``fix``) when ``path``'s name is longer than its folder allows."""
    size, limit = name_bytes(path.name), name_max(path.parent)
    if size > limit:
        raise InputError(
            f"{path.parent}/{path.name[:40]}…: file name too long ({size} bytes; this file system allows "
            f"{limit}); {fix}"
        )


def is_file(path: Path) -> bool:
    """``path.is_file()``, False (not an OSError) for a name longer than the file system allows."""
    try:
        return path.is_file()
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            return False
        raise


def short_prefix(name: str, keep: int = 64) -> str:
    """The first ``keep`` bytes of ``name`` (whole characters): a temporary file name that always fits."""
    return os.fsencode(name)[:keep].decode("utf-8", "ignore")
