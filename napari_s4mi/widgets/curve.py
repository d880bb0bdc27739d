"""A live training curve in the dock: loss per step and validation metrics (IoU; macro F1 and macro recall).

Before any data it says what it waits for; before the first validation, at which step that comes. The history of a
resumed run is read back from its ``metrics.jsonl`` (``load_history``), so the curve shows the whole run.

Drawn with QPainter on the GUI thread (a few polylines and labels, coordinates from NumPy: 1.5-2 ms for a few hundred
steps, ~5 ms for 30 000, on a 2-core CPU). An earlier
matplotlib version drew on a helper thread, but its Python held the GIL for 100-180 ms a drawing and made the event
loop wait for it while training. New data only schedules a repaint; Qt folds a burst of steps into one paint.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from qtpy.QtCore import QPointF, QRectF, QSize, Qt
from qtpy.QtGui import QColor, QFont, QImage, QPainter, QPaintEvent, QPen, QPolygonF
from qtpy.QtWidgets import QSizePolicy, QWidget

MAX_POINTS = 2000  # longer loss curves are drawn as the means of MAX_POINTS bins
MAX_DOTS = 150  # a validation series with more points is drawn as a line only
LOSS_COLOUR = "#1f77b4"
SERIES_COLOURS = ("#ff7f0e", "#2ca02c", "#d62728", "#9467bd")
MARGINS = (46, 20, 40, 34)  # left (loss ticks), top (title), right (0-1 ticks), bottom (step ticks and label)


@dataclass(frozen=True)
class CurveData:
    """What one drawing shows: the loss, validation series by name, a note, a title, and the colours to use."""

    steps: tuple[int, ...]
    losses: tuple[float, ...]
    series: tuple[tuple[str, tuple[int, ...], tuple[float, ...]], ...]
    note: str
    title: str
    width: int
    height: int
    dpr: float = 1.0
    foreground: str = "#000000"
    background: str = "#ffffff"


def binned(steps: Sequence[int], values: Sequence[float], max_points: int = MAX_POINTS):
    """At most ``max_points`` (step, value) pairs: the means of consecutive bins when there are more."""
    x, y = np.asarray(steps, float), np.asarray(values, float)
    if len(x) <= max_points:
        return x, y
    edges = np.linspace(0, len(x), max_points + 1).astype(int)
    return np.add.reduceat(x, edges[:-1]) / np.diff(edges), np.add.reduceat(y, edges[:-1]) / np.diff(edges)


def polygon(xy: np.ndarray) -> QPolygonF:
    """A QPolygonF of an (n, 2) array, written in place where the binding exposes its buffer (PyQt5/6)."""
    xy = np.ascontiguousarray(xy, dtype=np.float64)
    shape = QPolygonF()
    try:
        shape.resize(len(xy))
        buffer = shape.data()
        buffer.setsize(xy.nbytes)
        np.frombuffer(buffer, np.float64).reshape(-1, 2)[:] = xy
        return shape
    except (AttributeError, TypeError):  # PySide: one QPointF at a time
        return QPolygonF([QPointF(a, b) for a, b in xy.tolist()])


def nice_ticks(low: float, high: float, most: int = 5) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten apart) covering [low, high], at most ``most`` of them."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low] if math.isfinite(low) else []
    power = 10.0 ** math.floor(math.log10((high - low) / max(most, 1)))
    for step in (m * power for m in (1, 2, 5, 10, 20, 50)):  # the finest spacing that gives at most `most` ticks
        first = math.ceil(low / step - 1e-9) * step
        ticks = [first + k * step for k in range(int((high - first) / step + 1e-9) + 1)]
        if len(ticks) <= most:
            break
    return [float(f"{t:.12g}") + 0.0 for t in ticks]  # no float noise (0.6000000000000001), no -0.0


def tick_label(value: float) -> str:
    """A short label: integers without decimals, small and large values in %g form."""
    if value == int(value) and abs(value) < 1e6:
        return str(int(value))
    return f"{value:.3g}"


def _span(values: np.ndarray) -> tuple[float, float]:
    """The finite range of ``values`` with 5% padding (a flat or empty range is widened)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    low, high = float(finite.min()), float(finite.max())
    pad = 0.05 * (high - low) if high > low else max(abs(high) * 0.1, 0.5)
    return low - pad, high + pad


def _along(values, low: float, high: float, start: float, length: float):
    """Pixel positions of ``values`` on an axis mapping [low, high] to [start, start + length] (length < 0: upward)."""
    return start + (np.asarray(values, float) - low) / (high - low) * length


def paint_curve(painter: QPainter, data: CurveData) -> None:
    """Draw ``data`` into the painter's device, ``data.width`` × ``data.height`` logical pixels."""
    fg, bg = QColor(data.foreground), QColor(data.background)
    painter.fillRect(QRectF(0, 0, data.width, data.height), bg)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    font = QFont(painter.font())
    font.setPointSizeF(7.5)
    painter.setFont(font)
    painter.setPen(fg)
    if data.title:
        painter.drawText(QRectF(0, 2, data.width, MARGINS[1]), Qt.AlignmentFlag.AlignHCenter, data.title)
    if not data.steps:
        box = QRectF(12, 0, data.width - 24, data.height)
        flags = Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap
        painter.drawText(box, int(flags), data.note or "no training yet")
        return
    left, top, right, bottom = MARGINS
    plot = QRectF(left, top, max(data.width - left - right, 10), max(data.height - top - bottom, 10))
    x, y = binned(data.steps, data.losses, min(MAX_POINTS, 2 * int(plot.width())))  # two points a pixel at most
    all_steps = np.concatenate([x, *(np.asarray(s, float) for _, s, _ in data.series)])
    x_low, x_high = float(all_steps.min()), float(all_steps.max())
    if x_high <= x_low:
        x_low, x_high = x_low - 1, x_high + 1
    y_low, y_high = _span(y)

    def pixels(steps, values, low: float, high: float) -> np.ndarray:
        """(n, 2) widget coordinates of the finite (step, value) pairs."""
        xs, ys = np.asarray(steps, float), np.asarray(values, float)
        keep = np.isfinite(ys)
        px = _along(xs[keep], x_low, x_high, plot.left(), plot.width())
        return np.stack([px, _along(ys[keep], low, high, plot.bottom(), -plot.height())], axis=1)

    _axes(painter, plot, fg, (x_low, x_high), (y_low, y_high), with_metrics=bool(data.series))
    painter.setClipRect(plot.adjusted(-3, -3, 3, 3))
    painter.setPen(QPen(QColor(LOSS_COLOUR), 1.2))
    painter.drawPolyline(polygon(pixels(x, y, y_low, y_high)))
    for colour, (_, steps, values) in zip(SERIES_COLOURS, data.series, strict=False):
        points = pixels(steps, np.clip(np.asarray(values, float), 0.0, 1.0), 0.0, 1.0)
        painter.setPen(QPen(QColor(colour), 1.2))
        painter.drawPolyline(polygon(points))
        if len(points) <= MAX_DOTS:
            painter.setBrush(QColor(colour))
            for px, py in points.tolist():
                painter.drawEllipse(QPointF(px, py), 2.2, 2.2)
    painter.setClipping(False)
    painter.setBrush(Qt.BrushStyle.NoBrush)
    _legend(painter, plot, fg, data)


def _axes(
    painter: QPainter, plot: QRectF, fg: QColor, xs: tuple[float, float], ys: tuple[float, float], with_metrics: bool
) -> None:
    """The frame, step ticks below, loss ticks left (in the loss colour) and, with validations, 0-1 ticks right."""
    grid = QColor(fg)
    grid.setAlphaF(0.12)
    painter.setPen(QPen(fg, 0.8))
    painter.drawRect(plot)
    metrics = painter.fontMetrics()
    height = metrics.height()
    for tick in nice_ticks(*xs, most=max(2, int(plot.width() // 70))):
        px = float(_along(tick, *xs, plot.left(), plot.width()))
        painter.drawLine(QPointF(px, plot.bottom()), QPointF(px, plot.bottom() + 3))
        box = QRectF(px - 30, plot.bottom() + 3, 60, height)
        painter.drawText(box, int(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop), tick_label(tick))
    painter.drawText(
        QRectF(plot.left(), plot.bottom() + 2 + height, plot.width(), height), Qt.AlignmentFlag.AlignHCenter, "step"
    )
    loss_pen = QPen(QColor(LOSS_COLOUR), 0.8)
    for tick in nice_ticks(*ys, most=max(2, int(plot.height() // 30))):
        py = float(_along(tick, *ys, plot.bottom(), -plot.height()))
        painter.setPen(QPen(grid, 0.8))
        painter.drawLine(QPointF(plot.left(), py), QPointF(plot.right(), py))
        painter.setPen(loss_pen)
        box = QRectF(0, py - height / 2, plot.left() - 4, height)
        painter.drawText(box, int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter), tick_label(tick))
    painter.setPen(QPen(fg, 0.8))
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0) if with_metrics else ():
        py = float(_along(tick, 0.0, 1.0, plot.bottom(), -plot.height()))
        painter.drawLine(QPointF(plot.right(), py), QPointF(plot.right() + 3, py))
        box = QRectF(plot.right() + 5, py - height / 2, 40, height)
        painter.drawText(box, int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter), f"{tick:g}")


def _legend(painter: QPainter, plot: QRectF, fg: QColor, data: CurveData) -> None:
    """Names and colours at the plot's upper right (where a falling loss is not), and the note at its lower left
    while there is no validation yet."""
    metrics = painter.fontMetrics()
    rows: list[tuple[str, str]] = [("loss", LOSS_COLOUR)]
    rows += [(f"val. {name}", colour) for colour, (name, _, _) in zip(SERIES_COLOURS, data.series, strict=False)]
    height = metrics.height()
    width = max(metrics.horizontalAdvance(text) for text, _ in rows) + 22
    corner = QPointF(plot.right() - width - 4, plot.top() + 4)
    for k, (text, colour) in enumerate(rows):
        y = corner.y() + k * height + height / 2
        painter.setPen(QPen(QColor(colour), 2.0))
        painter.drawLine(QPointF(corner.x(), y), QPointF(corner.x() + 14, y))
        painter.setPen(fg)
        box = QRectF(corner.x() + 18, y - height / 2, width, height)
        painter.drawText(box, int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter), text)
    if data.note and not data.series:
        painter.setPen(fg)
        box = QRectF(plot.left() + 4, plot.bottom() - 2 * height - 4, plot.width() - 8, 2 * height)
        flags = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignBottom | Qt.TextFlag.TextWordWrap
        painter.drawText(box, int(flags), data.note)


def render(data: CurveData) -> QImage:
    """``data`` drawn into an ARGB image of ``width`` × ``height`` logical pixels (for tests and screenshots)."""
    image = QImage(
        max(1, round(data.width * data.dpr)), max(1, round(data.height * data.dpr)), QImage.Format.Format_ARGB32
    )
    image.setDevicePixelRatio(data.dpr)
    painter = QPainter(image)
    try:
        paint_curve(painter, data)
    finally:
        painter.end()
    return image


class TrainingCurve(QWidget):
    """Loss (left axis) and validation metrics (right axis, 0-1) against the step, painted by the GUI thread."""

    def __init__(self) -> None:
        super().__init__()
        self.setMinimumSize(QSize(240, 180))
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.steps: list[int] = []
        self.losses: list[float] = []
        self.series: dict[str, tuple[list[int], list[float]]] = {}
        self.note = "press Start to train: the loss and validation scores will show here"
        self.title = ""
        self.redraws = 0  # paints so far
        self.shown_steps = 0  # loss points in the latest paint

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
        self.update()

    def set_note(self, note: str) -> None:
        """The line shown while there is nothing (or no validation) to draw."""
        if note != self.note:
            self.note = note
            self.update()

    def add_loss(self, step: int, loss: float) -> None:
        self.steps.append(step)
        self.losses.append(loss)
        self.update()

    def add_validation(self, step: int, values: dict[str, float]) -> None:
        """One validation: ``values`` by series name (e.g. {"IoU": 0.7} or {"macro F1": .., "macro recall": ..})."""
        for name, value in values.items():
            steps, points = self.series.setdefault(name, ([], []))
            steps.append(step)
            points.append(value)
        self.update()

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
        self.update()

    def finish(self) -> None:
        self.update()

    # --------------------------------------------------------------------------------------------- drawing

    def snapshot(self) -> CurveData:
        """What a paint now would show, at the widget's size and in its palette's colours."""
        palette = self.palette()
        return CurveData(
            tuple(self.steps),
            tuple(self.losses),
            tuple((name, tuple(steps), tuple(values)) for name, (steps, values) in self.series.items()),
            self.note,
            self.title,
            max(self.width(), 1),
            max(self.height(), 1),
            float(self.devicePixelRatioF()),
            palette.color(palette.ColorRole.WindowText).name(),
            palette.color(palette.ColorRole.Window).name(),
        )

    def image(self) -> QImage:
        """The curve as the next paint shows it, as an image."""
        return render(self.snapshot())

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt API)
        data = self.snapshot()
        painter = QPainter(self)
        try:
            paint_curve(painter, data)
        finally:
            painter.end()
        self.redraws += 1
        self.shown_steps = len(data.steps)

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt API)
        return QSize(400, 240)

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        return QSize(240, 180)
