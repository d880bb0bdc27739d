"""Progress and status that change without re-laying out the dock or repainting the window more than needed.

Each repaint of napari's window costs the GUI thread 10-20 ms where its OpenGL canvas is composited in software
(Xvfb, remote and virtual desktops without a GPU). ``QLabel.setText`` invalidates its parent's layout (a relayout
pass, then a repaint) and ``QProgressBar.setValue`` repaints synchronously, outside the event loop's one coalesced
paint; while training, these added up to two window repaints in one event-loop pass. And napari's "in progress"
spinner, an animated GIF in the status bar shown while any activity bar is open, repaints the window ~31 times a
second: there it took ~60% of the GUI thread (and of a core the training needs) and caused the longest gaps.

The plugin is a guest in napari's window: it slows that one spinner only (the movie of the "in progress" label of
napari's ``ActivityToggleItem`` in the status bar), never other animations, and gives it back its previous speed
exactly when the last of its bars on that window closes.
"""

from __future__ import annotations

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


def napari_spinner(window: QWidget) -> QMovie | None:
    """napari's own "in progress" spinner in ``window``: the movie of its activity toggle's indicator label
    (``ActivityToggleItem._inProgressIndicator`` in the status bar); None where napari has none."""
    try:
        from napari._qt.dialogs.qt_activity_dialog import ActivityToggleItem
    except ImportError:
        return None
    for item in window.findChildren(ActivityToggleItem):
        label = getattr(item, "_inProgressIndicator", None)
        movie = label.movie() if isinstance(label, QLabel) else None
        if movie is not None:
            return movie
    return None


class _SlowedSpinner:
    """A spinner slowed while ``users`` bars are open, with the speed it had before."""

    def __init__(self, movie: QMovie):
        self.movie, self.users, self.before = movie, 0, movie.speed()


_slowed: dict[int, _SlowedSpinner] = {}  # by id(movie); the entry keeps the movie's wrapper alive


def _slow_spinner(movie: QMovie | None) -> None:
    if movie is None:
        return
    entry = _slowed.get(id(movie))
    try:
        if entry is None:
            entry = _slowed[id(movie)] = _SlowedSpinner(movie)
            movie.setSpeed(min(entry.before, SPINNER_SPEED_PERCENT))
    except RuntimeError:  # the window was deleted meanwhile (napari closing)
        _slowed.pop(id(movie), None)
        return
    entry.users += 1


def _restore_spinner(movie: QMovie | None) -> None:
    entry = _slowed.get(id(movie)) if movie is not None else None
    if entry is None:
        return
    entry.users -= 1
    if entry.users > 0:
        return
    del _slowed[id(movie)]
    try:
        movie.setSpeed(entry.before)
    except RuntimeError:  # the window was deleted meanwhile (napari closing)
        pass


class ActivityBar:
    """A progress bar in napari's activity dock; while any is open, the window's own napari spinner turns at
    ``SPINNER_SPEED_PERCENT`` of its pace (it still turns, so the window does not look frozen)."""

    def __init__(self, window: QWidget, total: int, desc: str):
        self.bar = progress(total=total, desc=desc)
        self.spinner = napari_spinner(window)
        _slow_spinner(self.spinner)
        self.closed = False

    @property
    def n(self) -> int:
        return self.bar.n

    def reset(self, total: int, desc: str) -> None:
        """The same bar for the next stage of a job."""
        self.bar.reset(total=total)
        self.bar.set_description(desc)

    def update(self, n: int = 1) -> None:
        self.bar.update(n)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.bar.close()
        _restore_spinner(self.spinner)
        self.spinner = None
