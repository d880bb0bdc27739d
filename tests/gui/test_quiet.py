"""Status text, progress and curve updates repaint their own rectangle only: no relayout of the dock, no
synchronous window repaint (each costs 10-20 ms of the GUI thread where napari's canvas is composited in software)."""

from __future__ import annotations

import pytest

pytest.importorskip("pytestqt")

from qtpy.QtCore import QEvent, QObject  # noqa: E402 (after the skip)
from qtpy.QtGui import QMovie  # noqa: E402
from qtpy.QtWidgets import QLabel, QProgressBar, QVBoxLayout, QWidget  # noqa: E402

from napari_s4mi.widgets.curve import TrainingCurve  # noqa: E402
from napari_s4mi.widgets.quiet import (  # noqa: E402
    SPINNER_SPEED_PERCENT,
    ActivityBar,
    StatusText,
    napari_spinner,
    set_progress,
)


class EventCounter(QObject):
    """Counts the events of one type that reach a widget."""

    def __init__(self, widget: QWidget, kind: QEvent.Type):
        super().__init__()
        self.kind, self.count = kind, 0
        widget.installEventFilter(self)

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 (Qt API)
        if event.type() == self.kind:
            self.count += 1
        return False


@pytest.fixture
def dock(qtbot):
    """A shown panel holding a label, a status text, a progress bar and a curve, laid out and painted."""
    panel = QWidget()
    qtbot.addWidget(panel)
    layout = QVBoxLayout(panel)
    widgets = {"label": QLabel("idle"), "status": StatusText("idle"), "bar": QProgressBar(), "curve": TrainingCurve()}
    for widget in widgets.values():
        layout.addWidget(widget)
    widgets["bar"].setRange(0, 100)
    panel.resize(420, 520)
    panel.show()
    qtbot.waitExposed(panel)
    qtbot.wait(50)
    yield panel, widgets


def test_status_text_and_curve_do_not_relayout_the_dock(qtbot, dock):
    panel, widgets = dock
    relayouts = EventCounter(panel, QEvent.Type.LayoutRequest)
    for step in range(1, 30):
        widgets["status"].setText(f"step {step}/100 · loss {1 / step:.3f} · ETA {100 - step} s")
        widgets["curve"].add_loss(step, 1 / step)
        qtbot.wait(5)
    widgets["curve"].finish()
    qtbot.waitUntil(lambda: widgets["curve"].shown_steps == 29, timeout=20_000)
    qtbot.wait(50)
    assert widgets["status"].text().startswith("step 29/100")
    assert widgets["curve"].image() is not None
    assert relayouts.count == 0
    # the control: a QLabel's new text does re-lay out its parent
    widgets["label"].setText("step 1/100 · loss 1.000 · a longer text than before")
    qtbot.wait(50)
    assert relayouts.count >= 1


def test_progress_is_painted_by_the_event_loop_not_at_once(qtbot, dock):
    _, widgets = dock
    bar = widgets["bar"]
    paints = EventCounter(bar, QEvent.Type.Paint)
    set_progress(bar, 40)
    assert (bar.value(), paints.count) == (40, 0)  # nothing painted inside the call
    qtbot.waitUntil(lambda: paints.count >= 1, timeout=2000)  # but painted with the next pass
    painted = paints.count
    bar.setValue(70)  # the control: QProgressBar.setValue repaints synchronously
    assert paints.count > painted


def test_napari_spinner_alone_turns_slowly_while_activity_bars_are_open(s4mi_viewer, qtbot):
    from napari.resources import LOADING_GIF_PATH

    viewer, widgets = s4mi_viewer
    window = widgets["Train"].window()
    spinner = napari_spinner(window)
    assert spinner is not None, "napari's status bar has an animated 'in progress' spinner"
    assert spinner is viewer.window._qt_window.statusBar()._activity_item._inProgressIndicator.movie()
    spinner.setSpeed(80)  # whatever speed it had before is given back exactly
    other = QMovie(LOADING_GIF_PATH)  # another animation of the window (another plugin's, say)
    label = QLabel()
    label.setMovie(other)
    viewer.window._qt_window.statusBar().addWidget(label)
    other.setSpeed(120)
    other.start()

    training = ActivityBar(window, total=10, desc="S4MI test training")
    predicting = ActivityBar(window, total=3, desc="S4MI test prediction")
    assert (spinner.speed(), other.speed()) == (SPINNER_SPEED_PERCENT, 120)
    training.update(4)
    assert training.n == 4
    training.close()
    training.close()  # closing twice counts once
    assert (spinner.speed(), other.speed()) == (SPINNER_SPEED_PERCENT, 120)  # a bar is still open
    predicting.close()
    assert (spinner.speed(), other.speed()) == (80, 120)
    other.stop()
