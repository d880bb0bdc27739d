"""A good guest in napari: in a plain napari process (not `s4mi napari`), a real training job from the Train widget
leaves the process as it found it: the garbage collector, the switch interval, other animations of the window, the
priorities of Qt's pooled threads, and `import triton`. napari's own spinner is slowed meanwhile, then restored."""

from __future__ import annotations

import gc
import os
import sys
import threading
from pathlib import Path

import pytest
from conftest import tiny_training

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from qtpy.QtCore import QRunnable, QThreadPool  # noqa: E402 (after the skips)
from qtpy.QtGui import QMovie  # noqa: E402
from qtpy.QtWidgets import QLabel  # noqa: E402

from napari_s4mi.core import host  # noqa: E402
from napari_s4mi.widgets.quiet import SPINNER_SPEED_PERCENT, napari_spinner  # noqa: E402
from napari_s4mi.widgets.workers import BACKGROUND_NICENESS  # noqa: E402

LINUX = sys.platform.startswith("linux")
ABSENT = "absent"


def niceness(tid: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, tid) if LINUX else 0


class NiceProbe(QRunnable):
    """Run on Qt's global thread pool (napari's workers use it): the niceness of the pooled thread it ran on."""

    def __init__(self):
        super().__init__()
        self.setAutoDelete(False)
        self.done, self.nice = threading.Event(), None

    def run(self) -> None:
        self.nice = niceness(threading.get_native_id())
        self.done.set()


def pool_thread_niceness() -> int:
    probe = NiceProbe()
    QThreadPool.globalInstance().start(probe)
    assert probe.done.wait(10)
    return probe.nice


def threads_niceness() -> dict[int, tuple[str, int]]:
    """(name, niceness) of every thread of this process, by native id."""
    found = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            found[int(task.name)] = ((task / "comm").read_text().strip(), niceness(int(task.name)))
        except (OSError, ProcessLookupError):  # ended meanwhile
            continue
    return found


def process_state(other: QMovie) -> dict:
    return {
        "gc enabled": gc.isenabled(),
        "gc thresholds": gc.get_threshold(),
        "gc frozen objects": gc.get_freeze_count(),
        "switch interval": sys.getswitchinterval(),
        "other movie speed": other.speed(),
        "pool thread niceness": pool_thread_niceness(),
        "triton blocked": sys.modules.get("triton", ABSENT) is None,
    }


def test_training_in_a_plain_napari_leaves_the_process_as_it_was(s4mi_viewer, qtbot, sample_project):
    from napari.resources import LOADING_GIF_PATH

    assert not host.owns_process(), "a plain napari with the plugin: the plugin is a guest"
    viewer, widgets = s4mi_viewer
    train_w = widgets["Train"]
    widgets["Project"].open_folder(str(sample_project.root))
    window = viewer.window._qt_window
    other = QMovie(LOADING_GIF_PATH)  # an animation of the window that is not napari's spinner (another plugin's)
    label = QLabel()
    label.setMovie(other)
    window.statusBar().addWidget(label)
    other.setSpeed(100)
    other.start()
    spinner = napari_spinner(window)
    spinner.setSpeed(70)  # napari's spinner, at a speed of somebody's choosing
    gui_nice = niceness(threading.get_native_id())
    before = process_state(other)
    threads_before = threads_niceness() if LINUX else {}  # Mesa's disk-cache thread, say, runs at 19 by itself

    tiny_training(train_w, iterations=6)
    train_w.start_button.click()
    job = train_w.job
    qtbot.waitUntil(lambda: train_w.progress_bar.value() >= 1 or train_w.last_error is not None, timeout=240_000)
    assert train_w.last_error is None
    during_threads = threads_niceness() if LINUX else {}
    during = {
        "spinner": spinner.speed(),
        "other": other.speed(),
        "switch": sys.getswitchinterval(),
        "pool": pool_thread_niceness(),
    }
    measured_while_running = job.running
    qtbot.waitUntil(lambda: not job.running, timeout=240_000)
    qtbot.waitUntil(lambda: not job.worker.is_running, timeout=10_000)
    job.thread.join(timeout=10)
    qtbot.wait(50)
    assert train_w.last_error is None and train_w.last_done is not None and train_w.last_done.step == 6
    assert measured_while_running, "the job ended before the checks meant for while it runs"

    # meanwhile: napari's spinner alone slowed; the computation alone lowered, on its own thread
    switch = before["switch interval"]
    assert during == {"spinner": SPINNER_SPEED_PERCENT, "other": 100, "switch": switch, "pool": gui_nice}
    if LINUX:
        assert during_threads[job.thread.native_id][1] == min(gui_nice + BACKGROUND_NICENESS, 19)
        pooled = {nice for name, nice in during_threads.values() if name == "Thread (pooled)"}
        assert pooled == {gui_nice}, "napari's relaying worker and Qt's other pooled threads keep their priority"

    # afterwards: everything as it was, napari's spinner at exactly its previous speed
    assert process_state(other) == before
    assert spinner.speed() == 70
    assert "triton" not in sys.modules or sys.modules["triton"] is not None
    if LINUX:  # no thread left behind at a lowered priority (the computation's math threads end with it)

        def lowered() -> dict:
            now = threads_niceness()
            return {tid: seen for tid, seen in now.items() if seen[1] != gui_nice and threads_before.get(tid) != seen}

        qtbot.waitUntil(lambda: not lowered(), timeout=10_000)
    other.stop()
