"""Atomic file writes: a temporary file in the target's folder, fsync, then ``os.replace``.

Readers see the old file or the new one, never a partial one; a failed write leaves the old file as it was.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .names import check_name_fits, short_prefix


@contextlib.contextmanager
def atomic_target(path: str | os.PathLike[str]) -> Iterator[io.BufferedWriter]:
    """Yield a binary file in ``path``'s folder that replaces ``path`` atomically once the block succeeds.

    A name longer than the file system allows is an InputError before anything is written; the temporary
    file's name is short whatever the target's."""
    path = Path(path)
    check_name_fits(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{short_prefix(path.name)}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with open(tmp, "wb") as fh:  # opened by name: writers such as tifffile want a named file
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, path.stat().st_mode & 0o7777 if path.exists() else 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entry table so a rename survives a crash (best effort; not on every OS)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: readers see the old file or the new one, never a partial one."""
    with atomic_target(path) as fh:
        fh.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))
