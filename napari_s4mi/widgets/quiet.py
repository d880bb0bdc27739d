"""Progress and status text that change without re-laying out the dock or repainting the window at once.

Each repaint of napari's window costs the GUI thread 10-20 ms where its OpenGL canvas is composited in software
(Xvfb, remote desktops). ``QLabel.setText`` invalidates its parent's layout (a relayout pass, then a repaint) and
``QProgressBar.setValue`` repaints synchronously, outside the event loop's one coalesced paint; while training,
these added up to two window repaints in one event-loop pass.
"""

from __future__ import annotations

from qtpy.QtCore import QSize, Qt
from qtpy.QtGui import QPainter, QPaintEvent
from qtpy.QtWidgets import QProgressBar, QSizePolicy, QWidget


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
