"""What the Train widget shows of a running job: progress bar, status line, live curve, the run's messages, and
napari's activity bar. It is fed the engine's events on the GUI thread and repaints sparingly (see quiet.py)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from napari.utils.notifications import show_warning
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QPlainTextEdit, QProgressBar, QVBoxLayout, QWidget

from ..core.config import TrainConfig
from ..core.events import Done, Message, Progress, Stage, Validation
from ..core.runs import read_metrics
from .curve import TrainingCurve
from .quiet import ActivityBar, StatusText, set_progress

SHOW_EVERY_MS = 250  # the latest step is shown at most this often
ACTIVITY_EVERY_S = 1.0  # napari's activity dock, at most this often


def eta_text(seconds: float) -> str:
    """h:mm:ss or m:ss."""
    seconds = int(round(seconds))
    hours, minutes = divmod(seconds // 60, 60)
    return f"{hours}:{minutes:02d}:{seconds % 60:02d}" if hours else f"{minutes}:{seconds % 60:02d}"


class TrainingDisplay(QWidget):
    """Progress, status, curve and messages of the job in the Train widget."""

    def __init__(self) -> None:
        super().__init__()
        self.progress_bar = QProgressBar()
        # a fixed box: a new step's text never re-lays out the dock (and so never resizes napari's canvas)
        self.status = StatusText("idle", lines=2)
        self.curve = TrainingCurve()
        self.messages = QPlainTextEdit()  # the run's warnings, readable in full however narrow the dock
        self.messages.setReadOnly(True)
        self.messages.setMaximumHeight(4 * self.messages.fontMetrics().lineSpacing() + 10)
        self.messages.setPlaceholderText("messages of the run (weights used, warnings) appear here")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for widget in (self.progress_bar, self.status, self.curve, self.messages):
            layout.addWidget(widget)
        self.config: TrainConfig | None = None
        self.stage = ""
        self._pbar: ActivityBar | None = None
        self._latest: Progress | None = None
        self._shown_step = 0
        self._activity_shown_at = 0.0
        self._show_timer = QTimer(self)
        self._show_timer.setSingleShot(True)
        self._show_timer.setInterval(SHOW_EVERY_MS)
        self._show_timer.timeout.connect(self._show_progress)

    # --------------------------------------------------------------------------------------------- a job

    def begin(self, config: TrainConfig, run_dir: Path, resume: bool, window: Any, stages: dict | None = None) -> None:
        """A job starts: clear (or, on resume, reload the run's history) and open napari's activity bar.
        ``stages``: for a pipeline, the config each stage runs, by stage name."""
        self.config, self.stage, self.stages = config, "", dict(stages or {})
        self._latest, self._shown_step = None, 0
        self.messages.clear()
        self._stage_started(config, run_dir, resume)
        self._pbar = ActivityBar(window, total=config.iterations, desc=f"S4MI {config.method}")
        self.status.setText(f"{'resuming' if resume else 'starting'} {run_dir.name} (loading data and models)…")

    def _stage_started(self, config: TrainConfig, run_dir: Path, resume: bool) -> None:
        title = f"{self.stage} · {config.method}" if self.stage else config.method
        self.curve.clear(title=title, note="loading data and models…")
        if resume:  # the whole run so far, read back from its metrics file
            self.curve.load_history(read_metrics(run_dir), config.headline)
        self.progress_bar.setRange(0, config.iterations)

    def on_event(self, event: Any) -> None:
        if isinstance(event, Progress):
            self._latest = event
            self.curve.add_loss(event.step, event.loss)
            self._note_first_validation(event)
            if not self._show_timer.isActive():
                self._show_timer.start()
        elif isinstance(event, Validation):
            values = self.config.headline(event.metrics) if self.config is not None else {}
            self.curve.add_validation(event.step, values or {event.metric: event.score})
        elif isinstance(event, Stage):
            self._on_stage(event)
        elif isinstance(event, Message):
            self.messages.appendPlainText(f"{event.level}: {event.text}")
            if event.level == "warning":  # info stays in the box: a popup animates (repaints) the whole window
                show_warning(f"S4MI: {event.text}")
        elif isinstance(event, Done):
            self._show_progress(final=True)
            self._latest = None  # the Done line stays (end() has no step left to show)
            verb = "stopped" if event.cancelled else "finished"
            best = event.best
            extra = f" · best {best.metric} {best.score:.3f} ({best.network})" if best is not None else ""
            where = f"{self.stage} " if self.stage else ""
            self.status.setText(f"{where}{verb} at step {event.step} · run {event.run_dir.name}{extra}")

    def _on_stage(self, stage: Stage) -> None:
        """A pipeline's next run begins: its own curve and progress (the config is read from the run's folder
        when it resumes, else the pipeline's)."""
        from ..core.registry import config_from_dict
        from ..core.runs import read_run_config

        self.stage = stage.name
        resume = (stage.run_dir / "config.json").is_file()
        if resume:
            config = config_from_dict(read_run_config(stage.run_dir)["config"])
        else:
            config = self.stages.get(stage.name, self.config)
        self.config = config
        self._latest, self._shown_step = None, 0
        if config is not None:
            self._stage_started(config, stage.run_dir, resume)
            if self._pbar is not None:
                self._pbar.reset(config.iterations, f"S4MI {self.stage}")
        self.status.setText(f"{self.stage} ({stage.index}/{stage.count}): loading data and models…")

    def _note_first_validation(self, event: Progress) -> None:
        config = self.config
        if config is None or not config.validates or self.curve.series or event.step >= event.total:
            return
        per_step = event.eta_s / max(event.total - event.step, 1)
        next_val = min(config.val_every * (event.step // config.val_every + 1), event.total)
        self.curve.set_note(f"first validation at step {next_val} (in ~{eta_text(per_step * (next_val - event.step))})")

    def _show_progress(self, final: bool = False) -> None:
        """Show the latest step; napari's activity dock at most once a second (its bar repaints the window)."""
        event = self._latest
        if event is None or event.step == self._shown_step and not final:
            if final:
                self._show_activity()
            return
        self._shown_step = event.step
        set_progress(self.progress_bar, event.step)
        where = f"{self.stage} " if self.stage else "step "
        self.status.setText(f"{where}{event.step}/{event.total} · loss {event.loss:.3f} · ETA {eta_text(event.eta_s)}")
        if final:
            self._show_activity()
        elif time.perf_counter() - self._activity_shown_at >= ACTIVITY_EVERY_S:
            # in a later pass of the event loop, so that this repaint and napari's do not add up in one
            QTimer.singleShot(SHOW_EVERY_MS // 2, self._show_activity)

    def _show_activity(self) -> None:
        self._activity_shown_at = time.perf_counter()
        if self._pbar is not None and self._shown_step > self._pbar.n:
            self._pbar.update(self._shown_step - self._pbar.n)

    def failed(self, text: str) -> None:
        self.status.setText(f"failed: {text}")
        self.messages.appendPlainText(f"error: {text}")

    def end(self) -> None:
        """The job's thread ended."""
        self._show_timer.stop()
        self._show_progress(final=True)
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
        self.curve.finish()

    def stopping(self) -> None:
        self.status.setText("stopping after this step…")
