"""Experiment widget: open an `s4mi experiment` folder, its table (one metric at a time) in a table widget and its
plot as an image layer. Reads the report files only: no torch, no training."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
from napari.utils.notifications import show_error
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..core.experiment.evaluate import HEADLINE, NAMES

LAYER_PREFIX = "experiment plot"


def read_table(folder: Path) -> dict[str, tuple[list[str], list[list[str]]]]:
    """metric -> (header, rows) from ``table.csv`` (rows: method, params, one 'mean ± CI' cell per fraction)."""
    with open(folder / "table.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    if not rows or rows[0][:1] != ["metric"]:
        raise ValueError(f"{folder / 'table.csv'} is not an experiment table")
    tables: dict[str, tuple[list[str], list[list[str]]]] = {}
    for row in rows[1:]:
        tables.setdefault(row[0], (rows[0][1:], []))[1].append(row[1:])
    return tables


def read_png(path: Path) -> np.ndarray:
    """An RGB uint8 array of a PNG (matplotlib's reader: no GUI backend)."""
    from matplotlib.image import imread

    image = imread(path)
    if image.dtype != np.uint8:
        image = np.clip(np.round(image * 255), 0, 255).astype(np.uint8)
    return image[..., :3]


class ExperimentWidget(QWidget):
    """An experiment's results: pick the metric, read mean ± 95% CI per method and label fraction."""

    def __init__(self, napari_viewer: Any):
        super().__init__()
        self.viewer = napari_viewer
        self.folder: Path | None = None
        self.tables: dict[str, tuple[list[str], list[list[str]]]] = {}
        self.open_button = QPushButton("Open experiment…")
        self.open_button.setToolTip("A folder written by `s4mi experiment --out` (its table.csv and plot.png)")
        self.metric = QComboBox()
        self.table = QTableWidget(0, 0)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.status = QLabel("No experiment open.")
        self.status.setWordWrap(True)
        top = QHBoxLayout()
        top.addWidget(self.open_button)
        top.addWidget(self.metric, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.status)
        self.open_button.clicked.connect(self.choose_folder)
        self.metric.currentIndexChanged.connect(self._show_metric)

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open an experiment folder")
        if folder:
            self.open_experiment(folder)

    def open_experiment(self, folder: str | Path) -> bool:
        """Show the experiment in ``folder``; False (and a one-line error) when it holds no report."""
        folder = Path(folder)
        try:
            tables = read_table(folder)
            settings = json.loads((folder / "experiment.json").read_text()).get("settings", {})
        except (OSError, ValueError, IndexError) as exc:
            show_error(f"{folder}: no experiment report ({exc.__class__.__name__}); run `s4mi experiment` first")
            return False
        self.folder, self.tables = folder, tables
        task = settings.get("task", "")
        self.metric.blockSignals(True)
        self.metric.clear()
        for key in tables:
            self.metric.addItem(NAMES.get(key, key), key)
        headline = self.metric.findData(HEADLINE.get(task, ""))
        self.metric.setCurrentIndex(max(headline, 0))
        self.metric.blockSignals(False)
        self._show_metric()
        runs = len(json.loads((folder / "results.json").read_text()).get("runs", []))
        self.status.setText(
            f"{folder.name}: {task}, preset {settings.get('preset', '?')}, {runs} finished run(s); cells: mean ± "
            "95% CI over seeds (Student t) on the test split."
        )
        self._show_plot(folder)
        return True

    def _show_metric(self) -> None:
        key = self.metric.currentData()
        if key not in self.tables:
            return
        header, rows = self.tables[key]
        self.table.setSortingEnabled(False)
        self.table.clear()
        self.table.setColumnCount(len(header))
        self.table.setRowCount(len(rows))
        self.table.setHorizontalHeaderLabels(header)
        for r, row in enumerate(rows):
            for c, cell in enumerate(row):
                self.table.setItem(r, c, QTableWidgetItem(cell))

    def _show_plot(self, folder: Path) -> None:
        path = folder / "plot.png"
        if not path.is_file():
            return
        image = read_png(path)
        name = f"{LAYER_PREFIX}: {folder.name}"
        if name in self.viewer.layers:
            self.viewer.layers[name].data = image
        else:
            self.viewer.add_image(image, name=name, rgb=True)

    def cells(self) -> list[list[str]]:
        """The table as shown (tests, copying)."""
        return [
            [self.table.item(r, c).text() for c in range(self.table.columnCount())]
            for r in range(self.table.rowCount())
        ]
