"""Train widget: the task (segmentation, or classification as pretraining then fine-tuning), its settings,
Start / Stop / Resume, and the job's progress (``train_display``); the math runs on a thread of the job's own."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QEvent
from qtpy.QtGui import QShowEvent
from qtpy.QtWidgets import QComboBox, QFormLayout, QHBoxLayout, QPushButton, QStackedWidget, QVBoxLayout, QWidget

from ..core.errors import S4MIError
from ..core.events import Checkpoint, Done
from ..core.registry import config_from_dict
from ..core.runs import list_runs, read_run_config
from .cls_form import ClsForm, finished_pretrainings
from .cluster_choice import ClusterChoiceRow
from .session import report, session_for
from .train_display import TrainingDisplay
from .train_form import TrainForm
from .workers import Job, JobError, start_ssl_training, start_training

STOP_WAIT_S = 120.0  # closing napari waits this long at most for the step in flight and the checkpoint
TASKS = ("segmentation", "classification")


class TrainWidget(QWidget):
    """Start, stop and resume training jobs of the open project without blocking the viewer."""

    def __init__(self, napari_viewer: Any):
        super().__init__()
        self.viewer = napari_viewer
        self.session = session_for(napari_viewer)
        self.task = QComboBox()
        self.task.addItems(list(TASKS))
        self.form = TrainForm()
        self.form.load_settings()
        self.cls_form = ClsForm()
        self.cls_form.load_settings()
        self.forms = QStackedWidget()
        self.forms.addWidget(self.form)
        self.forms.addWidget(self.cls_form)
        self.start_button = QPushButton("Start")
        self.stop_button = QPushButton("Stop")
        self.resume_button = QPushButton("Resume")
        self.display = TrainingDisplay()
        layout = QVBoxLayout(self)
        task_row = QFormLayout()
        task_row.addRow("task", self.task)
        layout.addLayout(task_row)
        layout.addWidget(self.forms)
        buttons = QHBoxLayout()
        for button in (self.start_button, self.stop_button, self.resume_button):
            buttons.addWidget(button)
        layout.addLayout(buttons)
        self.clusters = ClusterChoiceRow()  # a finished PiCIE run: which cluster is foreground
        layout.addWidget(self.clusters)
        layout.addWidget(self.display, stretch=1)
        self.task.currentIndexChanged.connect(self.forms.setCurrentIndex)
        self.start_button.clicked.connect(self.start)
        self.stop_button.clicked.connect(self.stop)
        self.resume_button.clicked.connect(self.resume)
        self.session.project_changed.connect(self._update_buttons)
        self.session.runs_changed.connect(self._update_buttons)
        self.session.on_shutdown(self.shutdown)
        self.job: Job | None = None
        self.run_dir: Path | None = None
        self.last_done: Done | None = None
        self.last_error: str | None = None
        self._update_buttons()

    # the display's parts, as the tests and the screenshot script know them
    @property
    def progress_bar(self):
        return self.display.progress_bar

    @property
    def status(self):
        return self.display.status

    @property
    def curve(self):
        return self.display.curve

    # --------------------------------------------------------------------------------------------- actions

    def start(self) -> None:
        """Start a new job with the chosen task's settings."""
        project = report(self.session.require_project, "training not started")
        if project is None:
            return
        try:
            if self.task.currentText() == "classification":
                pipeline = self.cls_form.pipeline()
                self.cls_form.save_settings()
                name = time.strftime("%Y%m%d-%H%M%S") + f"-{self.cls_form.method}"
                self._launch_pipeline(pipeline, project.runs_dir / name, resume=False)
                return
            config = self.form.config()
            init = self.form.ssl_init()
        except S4MIError as exc:
            show_error(f"training not started: {exc}")
            return
        self.form.save_settings()
        stamp = time.strftime("%Y%m%d-%H%M%S")
        out = project.runs_dir / f"{stamp}-{config.method}"
        if init is None:
            self._launch(config, out, resume=False)
        else:
            reuse, settings = init
            self._launch_ssl(config, out, reuse or project.runs_dir / f"{stamp}-cass-seg", settings)

    def resume(self) -> None:
        """Resume the newest stopped job of the project (a run, or a classification pipeline) where it stopped."""
        from ..core.cls_pipeline import PIPELINE_FILE, pipeline_finished, read_pipeline
        from ..core.ssl_init import read_pending

        project = report(self.session.require_project, "nothing to resume")
        if project is None:
            return
        runs = project.runs_dir
        pipelines = [p.parent for p in runs.glob(f"*/{PIPELINE_FILE}") if not pipeline_finished(p.parent)]
        runs_left = [r.path for r in list_runs(runs) if not r.finished and r.path not in pipelines]
        candidates = sorted(pipelines + runs_left, key=lambda p: p.stat().st_mtime, reverse=True)
        if not candidates:
            show_info("S4MI: no stopped run to resume; press Start for a new one")
            return
        chosen = candidates[0]
        pipeline = read_pipeline(chosen)
        pending = read_pending(chosen)  # a stopped pretraining with the segmentation run still to follow
        if pending is not None:
            out, config, settings = pending
            self._launch_ssl(config, out, chosen, settings)
        elif pipeline is not None:
            self._launch_pipeline(pipeline, chosen, resume=True)
        else:
            self._launch(config_from_dict(read_run_config(chosen)["config"]), chosen, resume=True)

    def stop(self) -> None:
        """Ask the job to stop after the step in flight; it writes its last checkpoint and ends."""
        if self.job is not None and self.job.running:
            self.job.stop()
            self.display.stopping()
            self.stop_button.setEnabled(False)

    def shutdown(self) -> None:
        """Stop and wait for the checkpoint (viewer or dock closing)."""
        if self.job is not None and self.job.running:
            if not self.job.stop(wait_s=STOP_WAIT_S):
                show_warning("S4MI: training did not stop in time; its last periodic checkpoint is kept")
        self.form.save_settings()
        self.cls_form.save_settings()

    # --------------------------------------------------------------------------------------------- jobs

    def _launch(self, config, run_dir: Path, resume: bool) -> None:
        if not self._ready():
            return
        self.run_dir = run_dir
        self._begin(start_training(self.session.require_project(), config, run_dir, resume=resume))
        self.display.begin(config, run_dir, resume, self.window())
        self.job.worker.start()

    def _launch_pipeline(self, pipeline, out: Path, resume: bool) -> None:
        from .cls_jobs import start_pipeline

        if not self._ready():
            return
        self.run_dir = out
        self._begin(start_pipeline(self.session.require_project(), pipeline, out, resume=resume))
        stages = {"pretraining": pipeline.pretraining, "fine-tuning": pipeline.finetune}
        first = pipeline.pretraining or pipeline.finetune
        self.display.begin(first, out, False, self.window(), {k: v for k, v in stages.items() if v is not None})
        self.job.worker.start()

    def _launch_ssl(self, config, out: Path, ssl_run: Path, settings: dict) -> None:
        """Segmentation from self-supervised encoders: pretrain them in ``ssl_run`` unless finished there, then
        train into ``out`` (the CLI's ``--init ssl``), as one job with a stage each."""
        from ..core.cls_pipeline import pipeline_finished
        from ..core.seg_pretrain_config import pretraining_for
        from ..core.ssl_init import read_pretraining

        try:
            if pipeline_finished(ssl_run):
                read_pretraining(ssl_run)  # a cass-seg run: refused with one line before anything starts
                stages = {"segmentation": config}
            else:
                stages = {"pretraining": pretraining_for(config, **settings), "segmentation": config}
        except S4MIError as exc:
            show_error(f"training not started: {exc}")
            return
        if not self._ready():
            return
        self.run_dir = out
        self._begin(start_ssl_training(self.session.require_project(), config, out, ssl_run, settings))
        self.display.begin(next(iter(stages.values())), out, False, self.window(), stages)
        self.job.worker.start()

    def _ready(self) -> bool:
        if self.job is not None and self.job.running:
            show_info("S4MI: a job is already training; stop it first")
            return False
        self.session.autosaver.flush(wait=True)  # the latest strokes are on disk before the worker reads masks
        self.last_done, self.last_error = None, None
        self.clusters.show_run(None)
        return True

    def _begin(self, job: Job) -> None:
        self.job = job
        job.worker.yielded.connect(self._on_event)
        job.worker.errored.connect(self._on_error)
        job.worker.finished.connect(self._on_finished)
        self._update_buttons(running=True)

    def _on_event(self, event: Any) -> None:
        self.display.on_event(event)
        if isinstance(event, Checkpoint):
            self.session.runs_changed.emit()
        elif isinstance(event, Done):
            self.last_done = event

    def _on_error(self, exc: BaseException) -> None:
        self.last_error = str(exc)
        text = str(exc) if isinstance(exc, (S4MIError, JobError)) else f"{exc.__class__.__name__}: {exc}"
        show_error(f"S4MI training failed: {text}")
        self.display.failed(text)

    def _on_finished(self) -> None:
        self.display.end()
        self.clusters.show_run(self.run_dir)
        self._update_buttons(running=False)
        self.session.runs_changed.emit()

    def _update_buttons(self, running: bool | None = None) -> None:
        if running is None:
            running = self.job is not None and self.job.running
        project = self.session.project
        self.start_button.setEnabled(project is not None and not running)
        self.resume_button.setEnabled(project is not None and not running)
        self.stop_button.setEnabled(running)
        self.forms.setEnabled(not running)
        self.task.setEnabled(not running)
        if project is not None and not running:
            finished = finished_pretrainings(project.runs_dir)
            self.cls_form.set_pretrainings(finished["classification"])
            self.form.set_pretrainings(finished["segmentation"])

    # --------------------------------------------------------------------------------------------- closing

    def event(self, event: QEvent) -> bool:
        """The dock was closed (napari re-parents the widget to nothing): stop and save."""
        if event.type() == QEvent.Type.ParentChange and self.parent() is None:
            self.shutdown()
        return super().event(event)

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 (Qt API)
        """Docked and shown: watch the main window so that closing napari stops workers and saves masks."""
        self.session.watch_window(self.window())
        super().showEvent(event)
