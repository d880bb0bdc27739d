"""Predict widget: pick a run, predict the current / unannotated / all slides, show and accept the result.

Segmentation runs give masks (and the CNN-Swin disagreement) as layers; classification runs give a table of class
probabilities per slide and saliency maps (``cls_panel``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import Qt
from qtpy.QtGui import QShowEvent
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..core.config import DEVICES
from ..core.errors import S4MIError
from ..core.runs import list_runs, summarize_run
from .cls_jobs import ClassRun, ClassScores, start_classification
from .cls_panel import ClsPanel
from .quiet import ActivityBar
from .session import report, session_for
from .workers import Job, JobError, SlideResult, start_prediction

SCOPES = ("current slide", "unannotated slides", "all slides")
STOP_WAIT_S = 120.0


class PredictWidget(QWidget):
    """Predictions of a trained run written to the project; the current slide's shown as layers."""

    def __init__(self, napari_viewer: Any):
        super().__init__()
        self.viewer = napari_viewer
        self.session = session_for(napari_viewer)
        self.run_box = QComboBox()
        # long run names: the box may be narrow (the tooltip and the list show them whole)
        self.run_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.run_box.setMinimumContentsLength(16)
        self.refresh_button = QPushButton("↻")
        self.refresh_button.setToolTip("Look for new runs")
        self.network = QComboBox()
        self.network.addItem("auto")
        self.network.setToolTip("auto: the network (or their mean) that did best on validation")
        self.scope = QComboBox()
        self.scope.addItems(list(SCOPES))
        self.device = QComboBox()
        self.device.addItems(list(DEVICES))
        self.disagreement = QCheckBox("show CNN↔Swin disagreement")
        self.whole_slides = QCheckBox("resize large slides whole")
        self.whole_slides.setToolTip(
            "Slides over the run's tile threshold (960 px) are cut into tiles as in training; checked, they are "
            "resized whole like the smaller training slides: the same field of view, e.g. photographs at a higher "
            "resolution than the training images (s4mi predict --large-slides whole)"
        )
        self.predict_button = QPushButton("Predict")
        self.stop_button = QPushButton("Stop")
        self.accept_button = QPushButton("Accept as annotation")
        self.accept_button.setToolTip("Copy the prediction into the editable mask of this slide (then correct it)")
        self.progress_bar = QProgressBar()
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.cls_panel = ClsPanel(self.session, self.run_box.currentData, self.device.currentText)
        self._build_layout()
        self.refresh_button.clicked.connect(self.refresh_runs)
        self.run_box.currentIndexChanged.connect(lambda _i: self._list_outputs())
        self.predict_button.clicked.connect(self.predict)
        self.stop_button.clicked.connect(self.stop)
        self.accept_button.clicked.connect(lambda: report(self.session.accept_prediction, "cannot accept"))
        self.disagreement.toggled.connect(self.session.set_disagreement_visible)
        self.session.project_changed.connect(self.refresh_runs)
        self.session.runs_changed.connect(self.refresh_runs)
        self.session.on_shutdown(self.shutdown)
        self.job: Job | None = None
        self.last_error: str | None = None
        self.predicted: list[str] = []
        self.notes: list[str] = []  # the job's notes shown (how large slides were cut)
        self._pbar: ActivityBar | None = None
        self.refresh_runs()

    def _build_layout(self) -> None:
        form = QFormLayout()
        runs = QHBoxLayout()
        runs.addWidget(self.run_box, stretch=1)
        runs.addWidget(self.refresh_button)
        form.addRow("run", runs)
        form.addRow("network", self.network)
        form.addRow("slides", self.scope)
        form.addRow("device", self.device)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.disagreement)
        layout.addWidget(self.whole_slides)
        buttons = QHBoxLayout()
        buttons.addWidget(self.predict_button)
        buttons.addWidget(self.stop_button)
        layout.addLayout(buttons)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.status)
        layout.addWidget(self.accept_button)
        layout.addWidget(self.cls_panel, stretch=1)
        layout.addStretch(1)

    # --------------------------------------------------------------------------------------------- runs

    def refresh_runs(self) -> None:
        """List the project's runs that have a checkpoint, newest first (nothing changes, and nothing repaints,
        when the list is what it was: a training job's every checkpoint asks)."""
        project = self.session.project
        runs = list_runs(project.runs_dir) if project is not None else []
        listed = [(self.run_box.itemText(i), self.run_box.itemData(i)) for i in range(self.run_box.count())]
        if listed == [(run.label, str(run.path)) for run in runs]:
            self._update_buttons()
            return
        current = self.run_box.currentData()
        self.run_box.clear()
        for run in runs:
            self.run_box.addItem(run.label, str(run.path))
            self.run_box.setItemData(self.run_box.count() - 1, f"{run.label}\n{run.path}", Qt.ItemDataRole.ToolTipRole)
        self.run_box.view().setMinimumWidth(self.run_box.view().sizeHintForColumn(0) + 24)
        if current is not None:
            index = self.run_box.findData(current)
            if index >= 0:
                self.run_box.setCurrentIndex(index)
        self._list_outputs()
        self._update_buttons()

    def _list_outputs(self) -> None:
        """The chosen run's outputs (its networks, and their mean for two) after "auto", keeping the choice."""
        run_dir = self.run_box.currentData()
        summary = summarize_run(Path(run_dir)) if run_dir else None
        chosen = self.network.currentText()
        self.network.clear()
        self.network.addItems(["auto", *(summary.outputs if summary else ())])
        self.network.setCurrentText(chosen)
        self.run_box.setToolTip(self.run_box.currentText())
        classifies = summary is not None and summary.task == "classification"
        self.cls_panel.setVisible(classifies)
        for widget in (self.disagreement, self.whole_slides, self.accept_button):
            widget.setVisible(not classifies)

    @property
    def classifies(self) -> bool:
        """Whether the chosen run is a classification run."""
        return self.cls_panel.isVisibleTo(self)

    def _slides(self) -> list[str]:
        project = self.session.require_project()
        scope = self.scope.currentText()
        if scope == "current slide":
            return [self.session.slide_id] if self.session.slide_id else []
        return project.unannotated_ids() if scope == "unannotated slides" else list(project.ids)

    # --------------------------------------------------------------------------------------------- actions

    def predict(self) -> None:
        """Predict the chosen slides in a worker; results go to the project's predictions folder."""
        if self.job is not None and self.job.running:
            return
        run_dir = self.run_box.currentData()
        if run_dir is None:
            show_error("S4MI: no trained run in this project yet; train one in the Train widget")
            return
        try:
            slides = self._slides()
        except S4MIError as exc:
            show_error(f"S4MI: cannot predict: {exc}")
            return
        if not slides:
            show_info("S4MI: no slides to predict for this choice")
            return
        self.last_error, self.predicted, self.notes, self._started = None, [], [], time.perf_counter()
        project = self.session.require_project()
        if self.classifies:
            self.job = start_classification(
                project, Path(run_dir), slides, self.network.currentText(), self.device.currentText()
            )
        else:
            large_slides = "whole" if self.whole_slides.isChecked() else "tile"
            self.job = start_prediction(
                project,
                run_dir,
                slides,
                self.session.slide_id,
                self.network.currentText(),
                self.device.currentText(),
                large_slides,
            )
        worker = self.job.worker
        worker.yielded.connect(self._on_result)
        worker.errored.connect(self._on_error)
        worker.finished.connect(self._on_finished)
        self.progress_bar.setRange(0, len(slides))
        self.progress_bar.setValue(0)
        self._pbar = ActivityBar(self.window(), total=len(slides), desc="S4MI prediction")
        self.status.setText(f"predicting {len(slides)} slide(s)…")
        self._update_buttons(running=True)
        worker.start()

    def stop(self) -> None:
        if self.job is not None and self.job.running:
            self.job.stop()
            self.status.setText("stopping after this slide…")

    def shutdown(self) -> None:
        if self.job is not None and self.job.running:
            self.job.stop(wait_s=STOP_WAIT_S)
        self.cls_panel.shutdown(STOP_WAIT_S)

    # --------------------------------------------------------------------------------------------- worker

    def _on_result(self, result: SlideResult | ClassScores | ClassRun) -> None:
        if isinstance(result, ClassRun):
            self.cls_panel.begin(result)
            return
        self.predicted.append(result.slide_id)
        self.progress_bar.setValue(result.done)
        if self._pbar is not None:
            self._pbar.update(1)
        self.status.setText(f"predicted {result.done}/{result.total}: {result.slide_id}")
        if isinstance(result, ClassScores):
            self.cls_panel.add(result)
            return
        if result.note is not None and not self.notes:  # once a job: a folder of large slides would repeat it
            self.notes.append(result.note)
            show_warning(f"S4MI: {result.slide_id}: {result.note}")
        if result.labels is not None:
            self.session.show_prediction(result.slide_id, result.labels, result.disagreement)
        else:
            self.session.statuses_changed.emit()

    def _on_error(self, exc: BaseException) -> None:
        self.last_error = str(exc)
        text = str(exc) if isinstance(exc, (S4MIError, JobError)) else f"{exc.__class__.__name__}: {exc}"
        show_error(f"S4MI prediction failed: {text}")
        self.status.setText(f"failed: {text}")

    def _on_finished(self) -> None:
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
        if self.last_error is None:
            elapsed = time.perf_counter() - self._started
            self.status.setText(f"predicted {len(self.predicted)} slide(s) in {elapsed:.1f} s (saved in the project)")
        self._update_buttons(running=False)

    def _update_buttons(self, running: bool | None = None) -> None:
        if running is None:
            running = self.job is not None and self.job.running
        self.predict_button.setEnabled(not running and self.run_box.count() > 0)
        self.stop_button.setEnabled(running)

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 (Qt API)
        """Docked and shown: watch the main window so that closing napari stops workers and saves masks."""
        self.session.watch_window(self.window())
        super().showEvent(event)
