"""Worker threads run below the GUI thread's priority (Linux), and give it back afterwards where allowed."""

from __future__ import annotations

import os
import sys
import threading

import pytest

pytest.importorskip("napari")

from napari_s4mi.widgets.workers import BACKGROUND_NICENESS, background_priority  # noqa: E402


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux only")
def test_background_priority_lowers_only_the_calling_thread():
    seen = {}

    def work():
        tid = threading.get_native_id()
        seen["before"] = os.getpriority(os.PRIO_PROCESS, tid)
        with background_priority() as applied:
            seen["applied"] = applied
            seen["inside"] = os.getpriority(os.PRIO_PROCESS, tid)
            seen["main"] = os.getpriority(os.PRIO_PROCESS, main_tid)

    main_tid = threading.get_native_id()
    main_before = os.getpriority(os.PRIO_PROCESS, main_tid)
    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert seen["applied"]
    assert seen["inside"] == min(seen["before"] + BACKGROUND_NICENESS, 19)
    assert seen["main"] == main_before  # the GUI thread keeps its priority


def test_startup_objects_are_frozen_once_per_process_and_can_be_turned_off():
    """Run in fresh interpreters: freezing is process-wide."""
    import subprocess

    code = (
        "import gc; from napari_s4mi.widgets.workers import freeze_startup_objects as f; "
        "first = f(); count = gc.get_freeze_count(); print(first, count > 1000, f())"
    )
    on = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert on.stdout.split() == ["True", "True", "False"]
    env = {**os.environ, "S4MI_GC_FREEZE": "0"}
    off = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert off.stdout.split() == ["False", "False", "False"]


def test_short_gil_switch_holds_while_any_worker_runs_and_is_restored():
    from napari_s4mi.widgets.workers import GIL_SWITCH_S, short_gil_switch

    before = sys.getswitchinterval()
    with short_gil_switch():
        assert sys.getswitchinterval() == pytest.approx(GIL_SWITCH_S)
        with short_gil_switch():  # a second worker
            pass
        assert sys.getswitchinterval() == pytest.approx(GIL_SWITCH_S)  # the first still runs
    assert sys.getswitchinterval() == pytest.approx(before)
