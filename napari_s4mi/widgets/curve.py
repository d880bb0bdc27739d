"""A live training curve in the dock: loss per step and validation IoU, redrawn a few times per second at most."""

from __future__ import annotations

import time

from qtpy.QtWidgets import QVBoxLayout, QWidget

REDRAW_EVERY_S = 1.0


class TrainingCurve(QWidget):
    """Loss (left axis) and validation IoU (right axis) against the step."""

    def __init__(self) -> None:
        super().__init__()
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(4, 2.4), tight_layout=True)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(180)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas)
        self.loss_axes = self.figure.add_subplot(111)
        self.iou_axes = self.loss_axes.twinx()
        self.steps: list[int] = []
        self.losses: list[float] = []
        self.val_steps: list[int] = []
        self.val_iou: list[float] = []
        self._drawn_at = 0.0
        self.redraws = 0
        self.clear()

    def clear(self) -> None:
        self.steps.clear()
        self.losses.clear()
        self.val_steps.clear()
        self.val_iou.clear()
        self._draw()

    def add_loss(self, step: int, loss: float) -> None:
        self.steps.append(step)
        self.losses.append(loss)
        self._maybe_draw()

    def add_validation(self, step: int, iou: float) -> None:
        self.val_steps.append(step)
        self.val_iou.append(iou)
        self._draw()

    def finish(self) -> None:
        self._draw()

    def _maybe_draw(self) -> None:
        if time.perf_counter() - self._drawn_at >= REDRAW_EVERY_S:
            self._draw()

    def _draw(self) -> None:
        self.loss_axes.clear()
        self.iou_axes.clear()
        self.loss_axes.plot(self.steps, self.losses, color="tab:blue", linewidth=1)
        self.loss_axes.set_xlabel("step")
        self.loss_axes.set_ylabel("loss", color="tab:blue")
        self.iou_axes.plot(self.val_steps, self.val_iou, "o-", color="tab:orange", markersize=3)
        self.iou_axes.set_ylim(0.0, 1.0)
        self.iou_axes.set_ylabel("val IoU", color="tab:orange")
        self.iou_axes.yaxis.set_label_position("right")
        self.canvas.draw_idle()
        self._drawn_at = time.perf_counter()
        self.redraws += 1
