"""Background work for the widgets: the engine's generators run in napari thread workers.

The worker threads import torch and run all training / prediction math; they never touch layers. They yield
plain values that the GUI thread applies. Each job has a ``finished`` threading.Event set when its thread is
really done, so closing the viewer can wait for the checkpoint without spinning the event loop.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from napari.qt.threading import GeneratorWorker, thread_worker

from ..core.config import SegConfig
from ..core.events import CancelToken, Progress
from ..core.project import Project


def guard_against_llvm_clash() -> bool:
    """Keep triton from loading when Mesa's software OpenGL has loaded its own LLVM (importing both crashes).

    torch imports triton (a CUDA build ships it) only to probe for torch.compile's GPU backend, which the
    widgets do not use. Returns True when triton was blocked.
    """
    if "triton" in sys.modules:
        return False
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            llvm_loaded = "libLLVM" in maps.read()
    except OSError:
        return False
    if llvm_loaded:
        sys.modules["triton"] = None  # type: ignore[assignment]  # `import triton` now raises ImportError
    return llvm_loaded


BACKGROUND_NICENESS = 10
_startup_frozen = False


def freeze_startup_objects() -> bool:
    """Once per process, after a first training step (or predicted slide): collect, then move every object alive
    now (napari's, torch's, nearly all alive for the whole session) out of the garbage collector's sight; True when
    it froze now.

    A full collection scans every tracked object while holding the GIL: with napari and torch loaded that froze the
    GUI for ~0.5 s whenever a worker allocated heavily (building the networks of a Predictor). Afterwards
    collections scan only newer objects. The price: objects alive now that later become cyclic garbage are not
    reclaimed (at most the layers on show at the first Start). ``S4MI_GC_FREEZE=0`` turns this off.
    """
    global _startup_frozen
    if _startup_frozen or os.environ.get("S4MI_GC_FREEZE", "1") == "0":
        return False
    _startup_frozen = True
    gc.collect()
    gc.freeze()
    return True


@contextlib.contextmanager
def background_priority(niceness: int = BACKGROUND_NICENESS) -> Iterator[bool]:
    """Run the calling thread (and the math threads it starts) at a lower OS priority, so that on a busy CPU the
    GUI thread is scheduled first. Linux only (per-thread nice values); elsewhere a no-op. Yields whether it applied.

    The thread's priority is restored afterwards where the OS allows it (raising it back needs privileges).
    """
    if not sys.platform.startswith("linux"):
        yield False
        return
    tid = threading.get_native_id()
    try:
        before = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(before + niceness, 19))
    except OSError:
        yield False
        return
    try:
        yield True
    finally:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, tid, before)


GIL_SWITCH_S = 0.0005
_switch_lock = threading.Lock()
_switch_users = 0
_switch_before = 0.005


@contextlib.contextmanager
def short_gil_switch() -> Iterator[None]:
    """While any worker runs, Python hands the GIL over every 0.5 ms instead of every 5 ms.

    Each time the GUI thread returns from a call that released the GIL (every OpenGL call while napari paints) it
    waits for a worker running Python code; a paint makes dozens of such calls. Measured while training (GUI bench,
    noisy): longest event-loop gap median 60 ms over 4 runs with 5 ms, 46 ms over 8 runs with 0.5 ms; no measurable
    change in training time.
    """
    global _switch_users, _switch_before
    with _switch_lock:
        if _switch_users == 0:
            _switch_before = sys.getswitchinterval()
            sys.setswitchinterval(GIL_SWITCH_S)
        _switch_users += 1
    try:
        yield
    finally:
        with _switch_lock:
            _switch_users -= 1
            if _switch_users == 0:
                sys.setswitchinterval(_switch_before)


@contextlib.contextmanager
def background_job(finished: threading.Event) -> Iterator[None]:
    """The frame of every worker: no triton beside Mesa's LLVM, low priority, short GIL switches; ``finished``
    set at the very end, whatever happened."""
    try:
        guard_against_llvm_clash()
        with background_priority(), short_gil_switch():
            yield
    finally:
        finished.set()


@dataclass
class Job:
    """A running worker with its stop flag and its end signal."""

    worker: GeneratorWorker
    cancel: CancelToken = field(default_factory=CancelToken)
    finished: threading.Event = field(default_factory=threading.Event)

    def stop(self, wait_s: float | None = None) -> bool:
        """Ask the job to stop at its next step; with ``wait_s`` block until it ended. True when it ended."""
        self.cancel.cancel()
        return self.finished.wait(wait_s) if wait_s is not None else self.finished.is_set()

    @property
    def running(self) -> bool:
        return not self.finished.is_set()


def _training(
    project: Project, config: SegConfig, run_dir: Path, resume: bool, cancel: CancelToken, finished: threading.Event
) -> Iterator[Any]:
    with background_job(finished):
        from ..core.engine import train_segmentation  # torch is imported here, off the GUI thread

        for event in train_segmentation(project, config, run_dir, cancel=cancel, resume=resume):
            if isinstance(event, Progress):  # after a first step: torch's lazy imports are done too
                freeze_startup_objects()
            yield event


def start_training(project: Project, config: SegConfig, run_dir: Path, resume: bool = False) -> Job:
    """A (not yet started) worker yielding the engine's events for one run."""
    cancel, finished = CancelToken(), threading.Event()
    run = thread_worker(_training, start_thread=False, ignore_errors=True)  # errors go to the widget's handler
    worker = run(project, config, run_dir, resume, cancel, finished)
    return Job(worker, cancel, finished)


@dataclass(frozen=True)
class SlideResult:
    """One predicted slide; arrays only for the slide that was on show (the others are read from disk)."""

    slide_id: str
    done: int
    total: int
    labels: Any = None
    disagreement: Any = None


def _prediction(
    project: Project,
    run_dir: Path,
    slide_ids: list[str],
    show_id: str | None,
    which: str,
    device: str,
    cancel: CancelToken,
    finished: threading.Event,
) -> Iterator[SlideResult]:
    with background_job(finished):
        from ..core.device import release_memory
        from ..core.predictor import Predictor

        predictor = Predictor(run_dir, which=which, device=device)
        try:
            for done, slide_id in enumerate(slide_ids, start=1):
                if cancel.cancelled:
                    return
                with project.open_slide(slide_id) as slide:
                    result = predictor.predict(slide)
                labels = result.labels.astype("uint8", copy=False)
                project.save_prediction(slide_id, labels, result.disagreement)
                freeze_startup_objects()  # no-op after the first time (normally done by a training run)
                shown = slide_id == show_id
                yield SlideResult(
                    slide_id, done, len(slide_ids), labels if shown else None, result.disagreement if shown else None
                )
        finally:
            device_used = predictor.device
            del predictor
            release_memory(device_used)


def start_prediction(
    project: Project, run_dir: Path, slide_ids: list[str], show_id: str | None, which: str, device: str
) -> Job:
    """A (not yet started) worker predicting slides into the project, yielding one SlideResult per slide."""
    cancel, finished = CancelToken(), threading.Event()
    worker = thread_worker(_prediction, start_thread=False, ignore_errors=True)(
        project, run_dir, slide_ids, show_id, which, device, cancel, finished
    )
    return Job(worker, cancel, finished)
