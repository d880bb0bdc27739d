"""The Predict widget's classification part: per-slide class probabilities in a sortable table (a click shows the
slide), "accept prediction as label", and saliency maps as an image layer over the slide, with export as TIFF."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..core.atomic import atomic_write_bytes
from ..core.errors import S4MIError
from .cls_jobs import ClassRun, ClassScores, SaliencyMap, start_saliency
from .session import Session, report
from .slide_layers import saliency_layer
from .workers import Job, JobError

KINDS = ("gradient", "gradcam")
SALIENCY_DIR = "saliency"


class NumberItem(QTableWidgetItem):
    """A table cell that sorts by its number, not its text."""

    def __init__(self, value: float):
        super().__init__(f"{value:.3f}")
        self.value = value

    def __lt__(self, other: QTableWidgetItem) -> bool:
        return self.value < getattr(other, "value", float("-inf"))


class ClsPanel(QWidget):
    """Class probabilities of the predicted slides and the saliency of the slide on show."""

    def __init__(self, session: Session, run_dir: Callable[[], str | None], device: Callable[[], str]):
        super().__init__()
        self.session, self._run_dir, self._device = session, run_dir, device
        self.table = QTableWidget(0, 2)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSortingEnabled(True)
        self.table.setMinimumHeight(140)
        self.accept_button = QPushButton("Accept prediction as label")
        self.accept_button.setToolTip("Set this slide's class label(s) to the predicted ones")
        self.class_box = QComboBox()
        self.network_box = QComboBox()
        self.kind_box = QComboBox()
        self.kind_box.addItems(list(KINDS))
        self.kind_box.setToolTip("gradient: |d score / d pixel| (any network); gradcam: Grad-CAM (the CNN)")
        self.saliency_button = QPushButton("Show saliency")
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(80)
        self.export_button = QPushButton("Export map as TIFF")
        self.legend = QLabel("saliency: 0 (transparent) → 1 (bright), scaled per slide")
        self.legend.setWordWrap(True)
        self._build_layout()
        self.table.itemClicked.connect(self._show_row)
        self.accept_button.clicked.connect(lambda: report(self.accept_prediction, "cannot accept"))
        self.saliency_button.clicked.connect(self.show_saliency)
        self.opacity.valueChanged.connect(self._set_opacity)
        self.export_button.clicked.connect(lambda: report(self.export_saliency, "cannot export"))
        self.classes: list[str] = []
        self.predicted: dict[str, tuple[str, ...]] = {}
        self.job: Job | None = None
        self.last_map: SaliencyMap | None = None
        self.last_error: str | None = None

    def _build_layout(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.table, stretch=1)
        layout.addWidget(self.accept_button)
        form = QFormLayout()
        form.addRow("class", self.class_box)
        form.addRow("network", self.network_box)
        form.addRow("map", self.kind_box)
        form.addRow("opacity", self.opacity)
        layout.addLayout(form)
        buttons = QHBoxLayout()
        buttons.addWidget(self.saliency_button)
        buttons.addWidget(self.export_button)
        layout.addLayout(buttons)
        layout.addWidget(self.legend)

    # --------------------------------------------------------------------------------------------- table

    def begin(self, run: ClassRun) -> None:
        """A classification job starts reporting: its classes and networks."""
        self.classes = list(run.classes)
        self.table.setSortingEnabled(False)
        self.table.setRowCount(0)
        self.table.setColumnCount(2 + len(self.classes))
        self.table.setHorizontalHeaderLabels(["slide", "predicted", *self.classes])
        for box, items in ((self.class_box, self.classes), (self.network_box, run.networks)):
            chosen = box.currentText()
            box.clear()
            box.addItems(list(items))
            box.setCurrentText(chosen)
        self.predicted.clear()

    def add(self, scores: ClassScores) -> None:
        """One slide's row (replacing an older row of the same slide)."""
        self.table.setSortingEnabled(False)
        rows = [r for r in range(self.table.rowCount()) if self.table.item(r, 0).text() == scores.slide_id]
        row = rows[0] if rows else self.table.rowCount()
        if not rows:
            self.table.insertRow(row)
        slide = QTableWidgetItem(scores.slide_id)
        slide.setData(Qt.ItemDataRole.UserRole, scores.slide_id)
        self.table.setItem(row, 0, slide)
        self.table.setItem(row, 1, QTableWidgetItem(", ".join(scores.predicted) or "—"))
        for column, prob in enumerate(scores.probs, start=2):
            self.table.setItem(row, column, NumberItem(prob))
        self.predicted[scores.slide_id] = scores.predicted
        self.table.setSortingEnabled(True)

    def rows(self) -> list[tuple[str, str, list[float]]]:
        """(slide, predicted, probabilities) of every row, in the order shown."""
        out = []
        for r in range(self.table.rowCount()):
            probs = [self.table.item(r, c).value for c in range(2, self.table.columnCount())]
            out.append((self.table.item(r, 0).text(), self.table.item(r, 1).text(), probs))
        return out

    def _show_row(self, item: QTableWidgetItem) -> None:
        slide_id = self.table.item(item.row(), 0).text()
        report(lambda: self.session.show_slide(slide_id), f"cannot show {slide_id}")

    def accept_prediction(self) -> None:
        """The slide on show gets its predicted class(es) as its label."""
        project, slide_id = self.session.require_project(), self.session.slide_id
        if slide_id not in self.predicted:
            raise S4MIError(f"no class prediction for {slide_id}; predict it first")
        classes = list(self.predicted[slide_id])
        if not project.label_classes:  # a project without a class list takes the run's
            project.set_label_classes(self.classes)
        project.set_labels(slide_id, classes)
        self.session.statuses_changed.emit()
        show_info(f"S4MI: {slide_id} labeled {', '.join(classes) or 'none of the classes'}")

    # --------------------------------------------------------------------------------------------- saliency

    def show_saliency(self) -> None:
        """Compute the saliency of the slide on show for the chosen class and network, in the background."""
        run_dir, slide_id = self._run_dir(), self.session.slide_id
        if run_dir is None or slide_id is None or not self.class_box.currentText():
            show_error("S4MI: pick a classification run, predict, and show a slide first")
            return
        if self.job is not None and self.job.running:
            return
        self.last_error = None
        self.job = start_saliency(
            self.session.require_project(),
            Path(run_dir),
            slide_id,
            self.class_box.currentText(),
            self.network_box.currentText() or None,
            self.kind_box.currentText(),
            self._device(),
        )
        self.job.worker.yielded.connect(self._on_map)
        self.job.worker.errored.connect(self._on_error)
        self.saliency_button.setEnabled(False)
        self.job.worker.finished.connect(lambda: self.saliency_button.setEnabled(True))
        self.job.worker.start()

    def _on_map(self, result: SaliencyMap) -> None:
        self.last_map = result
        layer = self.session.show_overlay("saliency", result.slide_id, saliency_layer(result, self.opacity.value()))
        if layer is not None:
            layer.colorbar.visible = True  # the legend of the colours, on the canvas

    def _on_error(self, exc: BaseException) -> None:
        self.last_error = str(exc)
        text = str(exc) if isinstance(exc, (S4MIError, JobError)) else f"{exc.__class__.__name__}: {exc}"
        show_error(f"S4MI saliency failed: {text}")

    def _set_opacity(self, value: int) -> None:
        layer = self.session.layers.get("saliency")
        if layer is not None:
            layer.opacity = value / 100.0

    def export_saliency(self) -> Path:
        """Write the map on show as a float32 TIFF in the project's predictions folder; returns its path."""
        import tifffile

        found = self.last_map
        if found is None or found.slide_id != self.session.slide_id:
            raise S4MIError("no saliency map on show for this slide; press Show saliency first")
        project = self.session.require_project()
        stem = Path(found.slide_id).stem
        path = project.predictions_dir / SALIENCY_DIR / f"{stem}_{found.class_name}_{found.network}_{found.kind}.tif"
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        tifffile.imwrite(buffer, np.asarray(found.data, np.float32), compression="zlib")
        atomic_write_bytes(path, buffer.getvalue())
        show_info(f"S4MI: saliency map saved as {path}")
        return path

    def shutdown(self, wait_s: float) -> None:
        if self.job is not None and self.job.running:
            self.job.stop(wait_s=wait_s)
