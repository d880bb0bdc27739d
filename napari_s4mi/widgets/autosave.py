"""Debounced, write-only-when-changed saving of the mask being painted.

The GUI thread only copies the layer's array (milliseconds); hashing and the atomic TIFF write happen on one
background thread, in order. A mask whose content equals what is on disk is never written.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
from qtpy.QtCore import QObject, QTimer, Signal

from ..core.project import Project

DEBOUNCE_MS = 1500


def digest(mask: np.ndarray) -> str:
    """A content hash of a label array (shape and dtype included)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{mask.shape}{mask.dtype}".encode())
    h.update(np.ascontiguousarray(mask).data)
    return h.hexdigest()


class MaskAutosaver(QObject):
    """Saves one slide's labels layer some time after the last edit, and at once on flush."""

    saved = Signal(str)  # slide id
    failed = Signal(str)  # message

    def __init__(self, debounce_ms: int = DEBOUNCE_MS):
        super().__init__()
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(debounce_ms)
        self._timer.timeout.connect(self.flush)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="s4mi-autosave")
        self._pending: Future | None = None
        self._saved_digest: dict[str, str] = {}
        self._project: Project | None = None
        self._slide_id: str | None = None
        self._read: Callable[[], np.ndarray] | None = None
        self.writes = 0  # masks actually written, for the user's status line and the tests

    def track(self, project: Project, slide_id: str, read: Callable[[], np.ndarray], on_disk: np.ndarray) -> None:
        """Follow a slide: ``read`` returns the layer's current array, ``on_disk`` what the project holds."""
        self.flush()
        self._project, self._slide_id, self._read = project, slide_id, read
        self._saved_digest[slide_id] = digest(on_disk)

    def untrack(self) -> None:
        """Save what is pending, then stop following the slide."""
        self.flush()
        self._project = self._slide_id = self._read = None

    def changed(self, *_: object) -> None:
        """An edit happened: (re)start the debounce timer."""
        if self._read is not None:
            self._timer.start()

    def flush(self, wait: bool = False) -> None:
        """Queue a save of the tracked mask now if it changed; ``wait`` blocks until every save is done."""
        self._timer.stop()
        if self._read is not None and self._project is not None and self._slide_id is not None:
            mask = np.array(self._read(), copy=True)
            self._pending = self._executor.submit(self._save, self._project, self._slide_id, mask)
        if wait and self._pending is not None:
            self._pending.result()

    def _save(self, project: Project, slide_id: str, mask: np.ndarray) -> None:
        """Runs on the saver thread: write only when the content differs from the last save."""
        key = digest(mask)
        if self._saved_digest.get(slide_id) == key:
            return
        try:
            project.save_mask(slide_id, mask)
        except Exception as exc:  # reported in the GUI; the layer still holds the strokes
            self.failed.emit(f"could not save the mask of {slide_id}: {exc}")
            return
        self._saved_digest[slide_id] = key
        self.writes += 1
        self.saved.emit(slide_id)

    def close(self) -> None:
        """Flush and stop the saver thread."""
        self.flush(wait=True)
        self._executor.shutdown(wait=True)
