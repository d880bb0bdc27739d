"""A job's computation runs on a thread of its own below the GUI thread's priority (Linux); napari's pooled worker
thread that relays its events keeps its priority; errors and the end signal still reach the widgets."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from napari_s4mi.core.events import CancelToken  # noqa: E402 (after the skips)
from napari_s4mi.widgets.workers import BACKGROUND_NICENESS, JobError, background_priority, start_job  # noqa: E402

LINUX = sys.platform.startswith("linux")


def niceness(tid: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, tid)


def pooled_threads() -> dict[int, int]:
    """Niceness of each of Qt's pooled threads (Qt names them "Thread (pooled)"), by native thread id."""
    found = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            if (task / "comm").read_text().strip() == "Thread (pooled)":
                found[int(task.name)] = niceness(int(task.name))
        except (OSError, ProcessLookupError):  # the thread ended meanwhile
            continue
    return found


@pytest.mark.skipif(not LINUX, reason="per-thread nice values are Linux only")
def test_background_priority_lowers_only_the_calling_thread():
    seen = {}

    def work():
        tid = threading.get_native_id()
        seen["before"] = niceness(tid)
        with background_priority() as applied:
            seen["applied"] = applied
            seen["inside"] = niceness(tid)
            seen["main"] = niceness(main_tid)

    main_tid = threading.get_native_id()
    main_before = niceness(main_tid)
    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert seen["applied"]
    assert seen["inside"] == min(seen["before"] + BACKGROUND_NICENESS, 19)
    assert seen["main"] == main_before  # the GUI thread keeps its priority


@pytest.mark.skipif(not LINUX, reason="per-thread nice values are Linux only")
def test_job_computes_on_its_own_low_priority_thread_and_relays_events_and_errors(qtbot):
    gui_nice = niceness(threading.get_native_id())

    def produce():
        for step in range(3):
            yield {
                "step": step,
                "thread": threading.current_thread(),
                "nice": niceness(threading.get_native_id()),
                "pooled": pooled_threads(),  # napari's relaying worker among them, blocked on the queue
            }
        raise RuntimeError("boom")

    cancel = CancelToken()
    job = start_job(produce, cancel, "s4mi-test")
    events, errors = [], []
    job.worker.yielded.connect(events.append)
    job.worker.errored.connect(lambda exc: errors.append((exc, job.finished.is_set())))
    with qtbot.waitSignal(job.worker.finished, timeout=20_000):
        job.worker.start()
    assert [event["step"] for event in events] == [0, 1, 2]  # in order, all of them
    assert {event["thread"] for event in events} == {job.thread}  # a thread of the job's own, not pooled
    assert job.thread.name == "s4mi-test" and job.thread.daemon and not job.thread.is_alive()
    assert {event["nice"] for event in events} == {min(gui_nice + BACKGROUND_NICENESS, 19)}
    assert all(event["pooled"] for event in events), "napari's worker relays from Qt's global thread pool"
    assert {nice for event in events for nice in event["pooled"].values()} == {gui_nice}
    (error, ended), *others = errors
    assert not others and isinstance(error, JobError) and str(error) == "RuntimeError: boom"
    assert isinstance(error.__cause__, RuntimeError)  # superqt would drop a RuntimeError (no errored, no finished)
    assert ended, "the error reaches the widget once the computation has ended"
    assert job.finished.is_set() and not job.running


def test_stop_waits_for_the_computation_to_end(qtbot):
    def produce():
        step = 0
        while not cancel.cancelled:
            step += 1
            yield step
            time.sleep(0.02)
        time.sleep(0.2)  # writing its last checkpoint
        yield "checkpoint"

    cancel = CancelToken()
    job = start_job(produce, cancel, "s4mi-test")
    events = []
    job.worker.yielded.connect(events.append)
    job.worker.start()
    qtbot.waitUntil(lambda: len(events) >= 2, timeout=10_000)
    assert job.running
    with qtbot.waitSignal(job.worker.finished, timeout=10_000):
        assert job.stop(wait_s=10)  # blocks without the event loop, until the computation ended
        assert cancel.cancelled and job.finished.is_set()
    job.thread.join(timeout=5)
    assert not job.thread.is_alive()
    assert events[-1] == "checkpoint"  # every event reached the GUI before the worker's finished signal


def test_prediction_job_resizes_a_large_slide_whole_when_asked_and_notes_tiling_it(qtbot, sample_project, tmp_path):
    import numpy as np
    from conftest import tiny_config
    from PIL import Image

    from napari_s4mi.core.engine import train
    from napari_s4mi.core.predictor import open_predictor
    from napari_s4mi.core.project import Project
    from napari_s4mi.core.stress import stress_pair
    from napari_s4mi.widgets.workers import start_prediction

    run = tmp_path / "run"
    list(train(sample_project, tiny_config(iterations=2), run, CancelToken()))
    slide_id = sample_project.ids[0]
    with sample_project.open_slide(slide_id) as slide:
        large, _ = stress_pair(slide.read(), np.zeros(slide.shape, np.uint8), "large")  # 768 x 1024: over 960
    (tmp_path / "large").mkdir()
    Image.fromarray(large).save(tmp_path / "large" / "big.png")
    project = Project.create(tmp_path / "large", project_dir=tmp_path / "large-project")
    big = project.ids[0]
    predictor = open_predictor(run, device="cpu")
    with project.open_slide(big) as slide:
        whole = predictor.predict(slide, large_slides="whole")
    assert whole.n_tiles == 1 and whole.labels.shape == (768, 1024)

    job = start_prediction(project, run, [big], big, "auto", "cpu", "whole")
    results = []
    job.worker.yielded.connect(results.append)
    with qtbot.waitSignal(job.worker.finished, timeout=120_000):
        job.worker.start()
    assert len(results) == 1 and np.array_equal(results[0].labels, whole.labels) and results[0].note is None
    # tiled, the slide is seen closer than the run's 256-px training slides were: said once, with the way out
    assert "--large-slides whole" in predictor.tiling_note((768, 1024))
    assert predictor.tiling_note((768, 1024), "whole") is None and predictor.tiling_note((900, 900)) is None
    job = start_prediction(project, run, [big], big, "auto", "cpu", "tile")
    results.clear()
    job.worker.yielded.connect(results.append)
    with qtbot.waitSignal(job.worker.finished, timeout=120_000):
        job.worker.start()
    assert results[0].note == predictor.tiling_note((768, 1024))
