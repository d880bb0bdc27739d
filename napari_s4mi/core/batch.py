"""A batch of slides that goes on past a bad one: the slide is reported and skipped, the rest processed, and the
result counts what was written and what was skipped (``strict``: stop at the first bad slide instead). Faults of
the outputs (a full or read-only disk: ``OutputError``) always stop the batch."""

from __future__ import annotations

import errno
import struct
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from .errors import OutputError, S4MIError

T = TypeVar("T")
SKIPPABLE = (S4MIError, OSError, ValueError, EOFError, SyntaxError, struct.error, zlib.error)
DISK_FAULTS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


@dataclass
class BatchResult:
    """What a batch did: slides written, and (path, reason) of those skipped."""

    total: int
    written: int = 0
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.skipped


def _report(line: str) -> None:
    from tqdm import tqdm

    tqdm.write(line, file=sys.stderr)


@dataclass
class SlideBatch:
    """Runs each slide's work, skipping (and reporting) a slide that cannot be read unless ``strict``."""

    total: int
    strict: bool = False
    report: Callable[[str], None] = _report
    result: BatchResult = field(init=False)

    def __post_init__(self) -> None:
        self.result = BatchResult(self.total)

    def attempt(self, path: Path, work: Callable[[], T]) -> T | None:
        """``work()``, or None when the slide at ``path`` failed and was skipped."""
        try:
            return work()
        except SKIPPABLE as exc:
            if self.strict or isinstance(exc, OutputError) or _disk_fault(exc):
                raise
            reason = _reason(path, exc)
            self.result.skipped.append((path, reason))
            self.report(f"s4mi: skipped: {reason}")
            return None


def _disk_fault(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in DISK_FAULTS


def _reason(path: Path, exc: BaseException) -> str:
    text = (str(exc).splitlines() or [""])[0]
    if isinstance(exc, S4MIError):
        return text
    return f"{path}: cannot be read ({exc.__class__.__name__}{': ' + text if text else ''}); fix or remove the file"
