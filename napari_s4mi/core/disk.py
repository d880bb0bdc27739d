"""Disk faults as one-line errors: no space left, read-only file systems, missing permission; free space
checked and disk-backed files allocated up front, so a full disk fails at once instead of half-way (or by SIGBUS
on a sparse memory map)."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from .errors import OutputError

FIXES = {
    errno.ENOSPC: ("no space left on the device", "free some space or pick another --out"),
    errno.EDQUOT: ("disk quota exceeded", "free some space or pick another --out"),
    errno.EROFS: ("read-only file system", "pick a writable --out"),
    errno.EACCES: ("permission denied", "pick a folder you can write to, or fix its permissions"),
    errno.EPERM: ("operation not permitted", "pick a folder you can write to, or fix its permissions"),
    errno.ENAMETOOLONG: ("file name too long", "shorten the names or the --out path"),
}


def describe_os_error(exc: OSError, what: str = "", path: Path | str | None = None) -> str:
    """One line for an OSError: the file (``path``, else the error's), the reason, what was being done, the fix."""
    name = path or exc.filename or "a file"
    reason, fix = FIXES.get(exc.errno or 0, (exc.strerror or str(exc) or exc.__class__.__name__, ""))
    doing = f" while {what}" if what else ""
    return f"{name}: {reason}{doing}{'; ' + fix if fix else ''}"


@contextlib.contextmanager
def writing(what: str, path: Path | str | None = None) -> Iterator[None]:
    """Turn an OSError raised while doing ``what`` (to ``path``) into an OutputError with one line."""
    try:
        yield
    except OSError as exc:
        raise OutputError(describe_os_error(exc, what, path)) from exc


def mib(nbytes: float) -> str:
    return f"{nbytes / 2**20:,.0f} MiB" if nbytes >= 2**20 else f"{nbytes / 2**10:,.0f} KiB"


def ensure_free_space(folder: Path, needed: int, what: str) -> None:
    """OutputError when the file system of ``folder`` (or its nearest existing parent) has less than ``needed``
    bytes free."""
    probe = Path(folder)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free = shutil.disk_usage(probe).free
    except OSError:
        return  # unknown: the writes themselves will tell
    if free < needed:
        raise OutputError(
            f"{folder}: {what} needs about {mib(needed)} and only {mib(free)} are free on that disk; "
            "free some space or pick another --out"
        )


def allocate(path: Path, size: int) -> None:
    """Reserve ``size`` bytes for ``path`` on disk now (not sparse), where the OS can; OSError (ENOSPC) if full."""
    if not hasattr(os, "posix_fallocate"):
        return
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            return  # the file system cannot reserve: the free-space check stands
        exc.filename = exc.filename or str(path)
        raise
    finally:
        os.close(fd)
