"""A live training curve in the dock: loss per step and validation IoU.

matplotlib draws the figure with its Agg renderer on a helper thread (~100–180 ms a draw on a 2-core CPU, too long
for the GUI thread); the GUI thread only shows the finished image. One draw is in flight at a time, at most one per
``REDRAW_EVERY_S`` while steps come in; the latest data always ends up drawn.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from qtpy.QtCore import QPoint, QSize, QTimer, Signal
from qtpy.QtGui import QImage, QPainter, QPaintEvent, QResizeEvent
from qtpy.QtWidgets import QSizePolicy, QWidget

REDRAW_EVERY_S = 1.0
MAX_POINTS = 2000  # longer loss curves are drawn as the means of MAX_POINTS bins


@dataclass(frozen=True)
class CurveData:
    """What one drawing shows, copied on the GUI thread."""

    steps: tuple[int, ...]
    losses: tuple[float, ...]
    val_steps: tuple[int, ...]
    val_iou: tuple[float, ...]
    width: int
    height: int
    dpr: float


def binned(steps: tuple[int, ...], values: tuple[float, ...], max_points: int = MAX_POINTS):
    """At most ``max_points`` (step, value) pairs: the means of consecutive bins when there are more."""
    x, y = np.asarray(steps, float), np.asarray(values, float)
    if len(x) <= max_points:
        return x, y
    edges = np.linspace(0, len(x), max_points + 1).astype(int)
    return np.add.reduceat(x, edges[:-1]) / np.diff(edges), np.add.reduceat(y, edges[:-1]) / np.diff(edges)


def render(data: CurveData) -> QImage:
    """Draw the curve with matplotlib's Agg canvas (any thread) into an RGBA QImage of the widget's size."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    dpi = 100.0 * data.dpr
    figure = Figure(figsize=(data.width / 100.0, data.height / 100.0), dpi=dpi)
    canvas = FigureCanvasAgg(figure)
    loss_axes = figure.add_subplot(111)
    iou_axes = loss_axes.twinx()
    x, y = binned(data.steps, data.losses)
    loss_axes.plot(x, y, color="tab:blue", linewidth=1)
    loss_axes.set_xlabel("step")
    loss_axes.set_ylabel("loss", color="tab:blue")
    iou_axes.plot(data.val_steps, data.val_iou, "o-", color="tab:orange", markersize=3)
    iou_axes.set_ylim(0.0, 1.0)
    iou_axes.set_ylabel("val IoU", color="tab:orange")
    figure.subplots_adjust(left=0.16, right=0.84, bottom=0.2, top=0.95)
    canvas.draw()
    buffer = np.asarray(canvas.buffer_rgba()).copy()
    height, width = buffer.shape[:2]
    image = QImage(buffer.data, width, height, 4 * width, QImage.Format.Format_RGBA8888).copy()
    image.setDevicePixelRatio(data.dpr)
    return image


class TrainingCurve(QWidget):
    """Loss (left axis) and validation IoU (right axis) against the step, drawn off the GUI thread."""

    drawn = Signal(object, object)  # (QImage or None, the CurveData drawn), emitted from the drawing thread

    def __init__(self) -> None:
        super().__init__()
        self.setMinimumSize(QSize(240, 180))
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self._image: QImage | None = None
        self.steps: list[int] = []
        self.losses: list[float] = []
        self.val_steps: list[int] = []
        self.val_iou: list[float] = []
        self.redraws = 0  # drawings shown
        self.shown_steps = 0  # loss points in the drawing on show
        self._drawer: ThreadPoolExecutor | None = None  # started on the first drawing, ended by close_drawer
        self._in_flight: Future | None = None
        self._dirty = False
        self._requested_at = 0.0
        self._lock = threading.Lock()
        self._later = QTimer(self)
        self._later.setSingleShot(True)
        self._later.timeout.connect(self._request)
        self.drawn.connect(self._show_image)
        self._request()

    # --------------------------------------------------------------------------------------------- data

    def clear(self) -> None:
        self.steps.clear()
        self.losses.clear()
        self.val_steps.clear()
        self.val_iou.clear()
        self._request()

    def add_loss(self, step: int, loss: float) -> None:
        self.steps.append(step)
        self.losses.append(loss)
        self._request(throttled=True)

    def add_validation(self, step: int, iou: float) -> None:
        self.val_steps.append(step)
        self.val_iou.append(iou)
        self._request()

    def finish(self) -> None:
        self._request()

    def close_drawer(self) -> None:
        """Let the drawing thread finish its drawing and end (a later drawing starts a new one)."""
        self._later.stop()
        drawer, self._drawer = self._drawer, None
        if drawer is not None:
            drawer.shutdown(wait=True)

    # --------------------------------------------------------------------------------------------- drawing

    def image(self) -> QImage | None:
        """The drawing on show (None before the first)."""
        return self._image

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt API)
        if self._image is None:
            return
        size = self._image.deviceIndependentSize()
        corner = QPoint(int((self.width() - size.width()) / 2), int((self.height() - size.height()) / 2))
        painter = QPainter(self)
        painter.drawImage(corner, self._image)
        painter.end()

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt API; not the drawing's size, which follows the widget's)
        return QSize(400, 240)

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        return QSize(240, 180)

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 (Qt API)
        super().resizeEvent(event)
        self._request()

    def _snapshot(self) -> CurveData:
        size = self.size()
        return CurveData(
            tuple(self.steps),
            tuple(self.losses),
            tuple(self.val_steps),
            tuple(self.val_iou),
            max(size.width(), 240),
            max(size.height(), 180),
            float(self.devicePixelRatioF()),
        )

    def _request(self, throttled: bool = False) -> None:
        """Draw the current data now, or as soon as the drawing in flight (or the throttle) allows."""
        wait_s = REDRAW_EVERY_S - (time.perf_counter() - self._requested_at) if throttled else 0.0
        with self._lock:
            busy = self._in_flight is not None
        self._dirty = self._dirty or busy or wait_s > 0
        if busy:
            return
        if wait_s > 0:
            if not self._later.isActive():
                self._later.start(int(wait_s * 1000) + 1)
            return
        self._dirty = False
        self._requested_at = time.perf_counter()
        if self._drawer is None:
            self._drawer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="s4mi-curve")
        data = self._snapshot()
        future = self._drawer.submit(render, data)
        with self._lock:
            self._in_flight = future
        future.add_done_callback(lambda done: self._emit(done, data))

    def _emit(self, future: Future, data: CurveData) -> None:
        """On the drawing thread: hand the image to the GUI thread."""
        image = None if future.cancelled() or future.exception() is not None else future.result()
        with self._lock:
            self._in_flight = None
        try:
            self.drawn.emit(image, data)
        except RuntimeError:  # the widget was deleted meanwhile
            pass

    def _show_image(self, image: QImage | None, data: CurveData) -> None:
        if image is not None:
            self._image = image
            self.update()  # this rectangle only: the dock's layout is untouched
            self.redraws += 1
            self.shown_steps = len(data.steps)
        if self._dirty:
            self._request(throttled=True)
