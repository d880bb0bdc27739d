"""Progress and status that change without re-laying out the dock or repainting the window more than needed.

Each repaint of napari's window costs the GUI thread 10-20 ms where its OpenGL canvas is composited in software
(Xvfb, remote and virtual desktops without a GPU). ``QLabel.setText`` invalidates its parent's layout (a relayout
pass, then a repaint) and ``QProgressBar.setValue`` repaints synchronously, outside the event loop's one coalesced
paint; while training, these added up to two window repaints in one event-loop pass. And napari's "in progress"
spinner, an animated GIF in the status bar shown while any activity bar is open, repaints the window ~31 times a
second: there it took ~60% of the GUI thread (and of a core the training needs) and caused the longest gaps.
"""

from __future__ import annotations

import weakref

from napari.utils import progress
from qtpy.QtCore import QSize, Qt
from qtpy.QtGui import QMovie, QPainter, QPaintEvent
from qtpy.QtWidgets import QLabel, QProgressBar, QSizePolicy, QWidget

SPINNER_SPEED_PERCENT = 15  # of the GIF's own pace: ~5 frames a second instead of ~31


def _int(flag: object) -> int:
    return int(getattr(flag, "value", flag))  # PyQt6 enums carry .value; PyQt5/PySide ones are ints


_TEXT_FLAGS = _int(Qt.AlignmentFlag.AlignLeft) | _int(Qt.AlignmentFlag.AlignTop) | _int(Qt.TextFlag.TextWordWrap)


class StatusText(QWidget):
    """A fixed box of ``lines`` word-wrapped lines of text; a new text repaints the box only."""

    def __init__(self, text: str = "", lines: int = 3):
        super().__init__()
        self._text = text
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.setFixedHeight(lines * self.fontMetrics().lineSpacing() + 2)

    def text(self) -> str:
        return self._text

    def setText(self, text: str) -> None:  # noqa: N802 (QLabel's name, so either can be used)
        if text != self._text:
            self._text = text
            self.update()

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt API)
        return QSize(200, self.height())

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt API)
        painter = QPainter(self)
        painter.drawText(self.rect(), _TEXT_FLAGS, self._text)
        painter.end()


def set_progress(bar: QProgressBar, value: int) -> None:
    """``bar.setValue(value)`` painted with the event loop's next pass instead of at once."""
    bar.setUpdatesEnabled(False)
    try:
        bar.setValue(value)
    finally:
        bar.setUpdatesEnabled(True)  # posts an update of the bar's rectangle


def window_movies(window: QWidget) -> list[QMovie]:
    """The animated images (napari's activity spinner) shown by labels in ``window``."""
    return [label.movie() for label in window.findChildren(QLabel) if label.movie() is not None]


class ActivityBar:
    """A progress bar in napari's activity dock; while any is open, the window's spinner turns at
    ``SPINNER_SPEED_PERCENT`` of its pace (it still turns, so the window does not look frozen)."""

    _open = 0  # bars open in this process

    def __init__(self, window: QWidget, total: int, desc: str):
        self._window = weakref.ref(window)  # never keeps a closing napari window alive
        self.bar = progress(total=total, desc=desc)
        ActivityBar._open += 1
        self._set_spinner_speed()
        self.closed = False

    @property
    def n(self) -> int:
        return self.bar.n

    def update(self, n: int = 1) -> None:
        self.bar.update(n)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.bar.close()
        ActivityBar._open -= 1
        self._set_spinner_speed()

    def _set_spinner_speed(self) -> None:
        speed = SPINNER_SPEED_PERCENT if ActivityBar._open > 0 else 100
        window = self._window()
        try:
            for movie in window_movies(window) if window is not None else []:
                movie.setSpeed(speed)
        except RuntimeError:  # the window was deleted meanwhile (napari closing)
            pass
