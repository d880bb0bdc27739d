"""Train widget: settings, Start / Stop / Resume, progress with ETA, live curve; training in a thread worker."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QEvent, QTimer
from qtpy.QtGui import QShowEvent
from qtpy.QtWidgets import QHBoxLayout, QProgressBar, QPushButton, QVBoxLayout, QWidget

from ..core.config import TrainConfig
from ..core.errors import S4MIError
from ..core.events import Checkpoint, Done, Message, Progress, Validation
from ..core.registry import config_from_dict
from ..core.runs import list_runs, read_run_config
from .curve import TrainingCurve
from .quiet import ActivityBar, StatusText, set_progress
from .session import report, session_for
from .train_form import TrainForm
from .workers import Job, JobError, start_training

SHOW_EVERY_MS = 250  # the widget shows the latest step at most this often
ACTIVITY_EVERY_S = 1.0  # napari's activity dock, at most this often
STOP_WAIT_S = 120.0  # closing napari waits this long at most for the step in flight and the checkpoint


def _eta(seconds: float) -> str:
    """h:mm:ss or m:ss."""
    seconds = int(round(seconds))
    hours, minutes = divmod(seconds // 60, 60)
    return f"{hours}:{minutes:02d}:{seconds % 60:02d}" if hours else f"{minutes}:{seconds % 60:02d}"


class TrainWidget(QWidget):
    """Start, stop and resume training runs of the open project without blocking the viewer."""

    def __init__(self, napari_viewer: Any):
        super().__init__()
        self.viewer = napari_viewer
        self.session = session_for(napari_viewer)
        self.form = TrainForm()
        self.form.load_settings()
        self.start_button = QPushButton("Start")
        self.stop_button = QPushButton("Stop")
        self.resume_button = QPushButton("Resume")
        self.progress_bar = QProgressBar()
        # a fixed box: a new step's text never re-lays out the dock (and so never resizes napari's canvas)
        self.status = StatusText("idle", lines=3)
        self.curve = TrainingCurve()
        layout = QVBoxLayout(self)
        layout.addWidget(self.form)
        buttons = QHBoxLayout()
        for button in (self.start_button, self.stop_button, self.resume_button):
            buttons.addWidget(button)
        layout.addLayout(buttons)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.status)
        layout.addWidget(self.curve)
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
        self._pbar: ActivityBar | None = None
        # Steps are shown by a timer, not per event: each repaint costs the GUI thread 10-20 ms (napari's canvas is
        # composited into the window), so fast runs (GPU: tens of steps a second) must not repaint every step.
        self._latest: Progress | None = None
        self._shown_step = 0
        self._activity_shown_at = 0.0
        self._show_timer = QTimer(self)
        self._show_timer.setSingleShot(True)
        self._show_timer.setInterval(SHOW_EVERY_MS)
        self._show_timer.timeout.connect(self._show_progress)
        self._update_buttons()

    # --------------------------------------------------------------------------------------------- actions

    def start(self) -> None:
        """Start a new run with the form's settings."""
        try:
            config = self.form.config()
        except S4MIError as exc:
            show_error(f"training not started: {exc}")
            return
        self.form.save_settings()
        project = report(self.session.require_project, "training not started")
        if project is None:
            return
        name = time.strftime("%Y%m%d-%H%M%S") + f"-{config.method}"
        self._launch(config, project.runs_dir / name, resume=False)

    def resume(self) -> None:
        """Resume the newest unfinished run of the project from its last checkpoint."""
        project = report(self.session.require_project, "nothing to resume")
        if project is None:
            return
        unfinished = [run for run in list_runs(project.runs_dir) if not run.finished]
        if not unfinished:
            show_info("S4MI: no stopped run to resume; press Start for a new one")
            return
        run = unfinished[0]
        config = config_from_dict(read_run_config(run.path)["config"])  # the run's own settings
        self._launch(config, run.path, resume=True)

    def stop(self) -> None:
        """Ask the run to stop after the step in flight; it writes its last checkpoint and ends."""
        if self.job is not None and self.job.running:
            self.job.stop()
            self.status.setText("stopping after this step…")
            self.stop_button.setEnabled(False)

    def shutdown(self) -> None:
        """Stop and wait for the checkpoint (viewer or dock closing)."""
        if self.job is not None and self.job.running:
            if not self.job.stop(wait_s=STOP_WAIT_S):
                show_warning("S4MI: training did not stop in time; its last periodic checkpoint is kept")
        self.form.save_settings()
        self.curve.close_drawer()

    # --------------------------------------------------------------------------------------------- worker

    def _launch(self, config: TrainConfig, run_dir: Path, resume: bool) -> None:
        if self.job is not None and self.job.running:
            show_info("S4MI: a run is already training; stop it first")
            return
        self.session.autosaver.flush(wait=True)  # the latest strokes are on disk before the worker reads masks
        self.run_dir, self.last_done, self.last_error = run_dir, None, None
        self._latest, self._shown_step = None, 0
        self.job = start_training(self.session.require_project(), config, run_dir, resume=resume)
        worker = self.job.worker
        worker.yielded.connect(self._on_event)
        worker.errored.connect(self._on_error)
        worker.finished.connect(self._on_finished)
        if not resume:
            self.curve.clear()
        self.progress_bar.setRange(0, config.iterations)
        self._pbar = ActivityBar(self.window(), total=config.iterations, desc=f"S4MI {config.method}")
        self.status.setText(f"{'resuming' if resume else 'starting'} {run_dir.name} (loading data and models)…")
        self._update_buttons(running=True)
        worker.start()

    def _on_event(self, event: Any) -> None:
        if isinstance(event, Progress):
            self._latest = event
            self.curve.add_loss(event.step, event.loss)
            if not self._show_timer.isActive():
                self._show_timer.start()
        elif isinstance(event, Validation):
            self.curve.add_validation(event.step, event.score)
        elif isinstance(event, Message):
            (show_warning if event.level == "warning" else show_info)(f"S4MI: {event.text}")
        elif isinstance(event, Checkpoint):
            self.session.runs_changed.emit()
        elif isinstance(event, Done):
            self._show_progress(final=True)
            self.last_done = event
            verb = "stopped" if event.cancelled else "finished"
            best = event.best
            extra = f" · best {best.metric} {best.score:.3f} ({best.network})" if best is not None else ""
            self.status.setText(f"{verb} at step {event.step} · run {event.run_dir.name}{extra}")

    def _show_progress(self, final: bool = False) -> None:
        """Show the latest step in the widget; napari's activity dock at most once a second (its bar repaints
        the whole window at once)."""
        event = self._latest
        if event is None or event.step == self._shown_step and not final:
            return
        self._shown_step = event.step
        set_progress(self.progress_bar, event.step)
        self.status.setText(f"step {event.step}/{event.total} · loss {event.loss:.3f} · ETA {_eta(event.eta_s)}")
        if final:
            self._show_activity()
        elif time.perf_counter() - self._activity_shown_at >= ACTIVITY_EVERY_S:
            # in a later pass of the event loop, so that this repaint and napari's do not add up in one
            QTimer.singleShot(SHOW_EVERY_MS // 2, self._show_activity)

    def _show_activity(self) -> None:
        """napari's activity dock catches up with the latest step shown."""
        self._activity_shown_at = time.perf_counter()
        if self._pbar is not None and self._shown_step > self._pbar.n:
            self._pbar.update(self._shown_step - self._pbar.n)

    def _on_error(self, exc: BaseException) -> None:
        self.last_error = str(exc)
        text = str(exc) if isinstance(exc, (S4MIError, JobError)) else f"{exc.__class__.__name__}: {exc}"
        show_error(f"S4MI training failed: {text}")
        self.status.setText(f"failed: {text}")

    def _on_finished(self) -> None:
        self._show_timer.stop()
        if self.last_done is None:
            self._show_progress(final=True)
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
        self.curve.finish()
        self._update_buttons(running=False)
        self.session.runs_changed.emit()

    def _update_buttons(self, running: bool | None = None) -> None:
        if running is None:
            running = self.job is not None and self.job.running
        has_project = self.session.project is not None
        self.start_button.setEnabled(has_project and not running)
        self.resume_button.setEnabled(has_project and not running)
        self.stop_button.setEnabled(running)
        self.form.setEnabled(not running)

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
