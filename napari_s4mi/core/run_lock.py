"""One process per run folder: ``run.lock`` holds the pid of the process writing the run, locked with
``fcntl.flock`` (released by the OS when the process ends, even by ``kill -9``: a stale file never blocks)."""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

from .errors import InputError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; the lock file is written but not enforced
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = "run.lock"


class RunLock:
    """An exclusive lock on a run folder (created if missing); InputError when another process holds it."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self._fd: int | None = None
        self._created_dir = False

    def acquire(self) -> RunLock:
        self._created_dir = not self.run_dir.exists()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for _ in range(5):  # the file may be replaced between open and lock by a process that just released it
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as exc:
                    if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                        pass  # a file system without locks (some network mounts): go on unlocked
                    else:
                        owner = _read_pid(fd)
                        os.close(fd)
                        raise InputError(
                            f"{self.run_dir}: in use by another s4mi process{f' (pid {owner})' if owner else ''}; "
                            "wait for it to end or stop it, or pick another --out"
                        ) from None
            if _same_file(fd, self.path):
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                self._fd = fd
                return self
            os.close(fd)
        raise InputError(f"{self.path}: could not lock the run folder; try again")

    def release(self) -> None:
        """Remove the lock file (while still holding it), unlock, and remove a run folder this lock created and
        nothing else filled."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(self._fd)
        self._fd = None
        if self._created_dir:
            with contextlib.suppress(OSError):
                self.run_dir.rmdir()  # only when empty

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except OSError:
        return False


def _read_pid(fd: int) -> str:
    with contextlib.suppress(OSError, ValueError):
        return str(int(os.pread(fd, 32, 0).decode().strip()))
    return ""
