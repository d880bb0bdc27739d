"""A live training curve in the dock: loss per step and validation metrics (IoU; macro F1 and macro recall).

Before any data it says what it waits for; before the first validation, at which step that comes. The history of a
resumed run is read back from its ``metrics.jsonl`` (``load_history``), so the curve shows the whole run.

matplotlib draws the figure with its Agg renderer on a helper thread (~100–180 ms a draw on a 2-core CPU, too long
for the GUI thread); the GUI thread only shows the finished image. One draw is in flight at a time, at most one per
``REDRAW_EVERY_S`` while steps come in; the latest data always ends up drawn.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from qtpy.QtCore import QPoint, QSize, QTimer, Signal
from qtpy.QtGui import QImage, QPainter, QPaintEvent, QResizeEvent
from qtpy.QtWidgets import QSizePolicy, QWidget

REDRAW_EVERY_S = 1.0
MAX_POINTS = 2000  # longer loss curves are drawn as the means of MAX_POINTS bins


SERIES_COLOURS = ("tab:orange", "tab:green", "tab:red", "tab:purple")


@dataclass(frozen=True)
class CurveData:
    """What one drawing shows, copied on the GUI thread: the loss, validation series by name, a note."""

    steps: tuple[int, ...]
    losses: tuple[float, ...]
    series: tuple[tuple[str, tuple[int, ...], tuple[float, ...]], ...]
    note: str
    title: str
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
    figure = Figure(figsize=(data.width / 100.0, data.height / 100.0), dpi=dpi, layout="constrained")
    canvas = FigureCanvasAgg(figure)
    loss_axes = figure.add_subplot(111)
    loss_axes.tick_params(labelsize=7)
    if data.title:
        loss_axes.set_title(data.title, fontsize=8)
    if not data.steps:
        loss_axes.set_axis_off()
        loss_axes.text(0.5, 0.5, data.note or "no training yet", ha="center", va="center", fontsize=9, wrap=True)
    else:
        x, y = binned(data.steps, data.losses)
        loss_axes.plot(x, y, color="tab:blue", linewidth=1)
        loss_axes.set_xlabel("step", fontsize=8)
        loss_axes.set_ylabel("loss", color="tab:blue", fontsize=8)
        metric_axes = loss_axes.twinx()
        metric_axes.tick_params(labelsize=7)
        metric_axes.set_ylim(0.0, 1.0)
        for colour, (name, steps, values) in zip(SERIES_COLOURS, data.series, strict=False):
            metric_axes.plot(steps, values, "o-", color=colour, markersize=3, label=name)
        if any(steps for _, steps, _ in data.series):
            metric_axes.legend(loc="lower right", fontsize=7, frameon=False)
            metric_axes.set_ylabel("validation", fontsize=8)
        elif data.note:
            metric_axes.text(
                0.98, 0.04, data.note, ha="right", va="bottom", fontsize=7, transform=metric_axes.transAxes
            )
    canvas.draw()
    buffer = np.asarray(canvas.buffer_rgba()).copy()
    height, width = buffer.shape[:2]
    image = QImage(buffer.data, width, height, 4 * width, QImage.Format.Format_RGBA8888).copy()
    image.setDevicePixelRatio(data.dpr)
    return image


class TrainingCurve(QWidget):
    """Loss (left axis) and validation metrics (right axis, 0-1) against the step, drawn off the GUI thread."""

    drawn = Signal(object, object)  # (QImage or None, the CurveData drawn), emitted from the drawing thread

    def __init__(self) -> None:
        super().__init__()
        self.setMinimumSize(QSize(240, 180))
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self._image: QImage | None = None
        self.steps: list[int] = []
        self.losses: list[float] = []
        self.series: dict[str, tuple[list[int], list[float]]] = {}
        self.note = "press Start to train: the loss and validation scores will show here"
        self.title = ""
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

    @property
    def val_steps(self) -> list[int]:
        """Steps of the first validation series (the IoU of a segmentation run)."""
        return next(iter(self.series.values()), ([], []))[0]

    def clear(self, title: str = "", note: str = "") -> None:
        self.steps.clear()
        self.losses.clear()
        self.series.clear()
        self.title, self.note = title, note
        self._request()

    def set_note(self, note: str) -> None:
        """The line shown while there is nothing (or no validation) to draw."""
        if note != self.note:
            self.note = note
            self._request(throttled=True)

    def add_loss(self, step: int, loss: float) -> None:
        self.steps.append(step)
        self.losses.append(loss)
        self._request(throttled=True)

    def add_validation(self, step: int, values: dict[str, float]) -> None:
        """One validation: ``values`` by series name (e.g. {"IoU": 0.7} or {"macro F1": .., "macro recall": ..})."""
        for name, value in values.items():
            steps, points = self.series.setdefault(name, ([], []))
            steps.append(step)
            points.append(value)
        self._request()

    def load_history(self, records: list[dict], headline: Callable[[dict], dict[str, float]]) -> None:
        """Refill from a run's metrics.jsonl records: the loss of every step, and ``headline(record)`` (series name
        -> value) of the records that hold a validation."""
        self.steps.clear()
        self.losses.clear()
        self.series.clear()
        for record in records:
            if "loss" not in record or "step" not in record:
                continue
            self.steps.append(int(record["step"]))
            self.losses.append(float(record["loss"]))
            found = headline(record)
            if found:
                self.add_validation(int(record["step"]), found)
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
        series = tuple((name, tuple(steps), tuple(values)) for name, (steps, values) in self.series.items())
        return CurveData(
            tuple(self.steps),
            tuple(self.losses),
            series,
            self.note,
            self.title,
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
