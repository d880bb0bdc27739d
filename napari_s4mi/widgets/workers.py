"""Background work for the widgets: each job's computation runs on a thread of its own, relayed to the GUI.

The plugin is a guest in napari's process. A job's training / prediction math runs on a dedicated
``threading.Thread`` that lowers its own OS priority (and that of the math threads it starts), so that on a busy
CPU the GUI thread is scheduled first; it never lowers a pooled thread that napari or other plugins reuse. napari's
thread worker (on Qt's global thread pool, at normal priority) only relays the computation's events from a queue,
yielding them to the GUI thread, which applies them (the computation never touches layers). Errors raised by the
computation are re-raised by the relay, so they reach ``worker.errored``. Each job has a ``finished``
threading.Event set when its computation thread is done, so closing the viewer can wait for the checkpoint without
spinning the event loop. Process-wide tweaks (``host``) apply only where S4MI owns the process (`s4mi napari`).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari.qt.threading import GeneratorWorker, thread_worker

from ..core import host
from ..core.events import CancelToken, Progress

if TYPE_CHECKING:
    from ..core.config import TrainConfig
    from ..core.project import Project
    from ..core.seg_config import SegConfig

# The job's math threads run one step below the GUI: on a CPU that other programs keep busy, nice +10 starved the
# job (a `cpu-small` step beside two busy processes: 17.7 s at nice 10, 3.6 s at nice 3, 1.5 s at nice 0), while
# the GUI thread, which mostly sleeps, is scheduled at once on waking whatever the job's niceness.
BACKGROUND_NICENESS = 1


@contextlib.contextmanager
def background_priority(niceness: int = BACKGROUND_NICENESS) -> Iterator[bool]:
    """Run the calling thread (and the math threads it starts) at a lower OS priority, so that on a busy CPU the
    GUI thread is scheduled first. Linux only (per-thread nice values); elsewhere a no-op. Yields whether it applied.

    Only for a thread of the job's own: a pooled thread would keep the lowered priority for whoever reuses it
    (raising it back needs privileges). The priority is restored afterwards where the OS allows it.
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


def name_native_thread(name: str) -> None:
    """Give the calling thread's OS name (Linux, 15 bytes; shown by top -H): a new thread inherits its creator's,
    which would otherwise make the job's threads look like Qt's "Thread (pooled)"."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME


_END = object()


class JobError(Exception):
    """A RuntimeError of the computation (torch raises many), relayed as another type: napari's (superqt's) worker
    takes a RuntimeError for a deleted worker and drops it, with neither ``errored`` nor ``finished``."""


@dataclass(frozen=True)
class _Failed:
    error: BaseException


class Computation:
    """A job's math on a daemon thread of its own, at background priority; its events go through a queue.

    ``finished`` is set as the thread's last act, whatever happened. A daemon thread, so that a run that did not
    stop in time cannot keep the process alive after napari closed (its last periodic checkpoint is kept).
    """

    def __init__(self, produce: Callable[[], Iterator[Any]], finished: threading.Event, name: str):
        self._produce = produce
        self.finished = finished
        self.events: queue.SimpleQueue = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        try:
            name_native_thread(self.thread.name)
            host.load_triton_apart()  # before torch imports triton beside Mesa's LLVM (see host)
            with background_priority(), host.short_gil_switch():
                for event in self._produce():
                    self.events.put(event)
        except BaseException as exc:  # noqa: BLE001 (handed to the relay, which re-raises it)
            self.events.put(_Failed(exc))
        finally:
            self.events.put(_END)
            self.finished.set()

    def relay(self, cancel: CancelToken) -> Iterator[Any]:
        """The napari worker's generator: start the computation, yield its events, and once its thread has ended,
        re-raise its error. Abandoned early (the worker quit), it asks the computation to stop."""
        self.thread.start()
        error: BaseException | None = None
        ended = False
        try:
            while (item := self.events.get()) is not _END:
                if isinstance(item, _Failed):
                    error = item.error
                else:
                    yield item
            ended = True
        finally:
            if not ended:
                cancel.cancel()
        self.thread.join()
        if isinstance(error, RuntimeError):
            raise JobError(f"{error.__class__.__name__}: {error}") from error
        if error is not None:
            raise error


@dataclass
class Job:
    """A running job: napari's relaying worker, the stop flag, the end signal and the computation's own thread."""

    worker: GeneratorWorker
    cancel: CancelToken = field(default_factory=CancelToken)
    finished: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def stop(self, wait_s: float | None = None) -> bool:
        """Ask the job to stop at its next step; with ``wait_s`` block until it ended. True when it ended."""
        self.cancel.cancel()
        return self.finished.wait(wait_s) if wait_s is not None else self.finished.is_set()

    @property
    def running(self) -> bool:
        return not self.finished.is_set()


def start_job(produce: Callable[[], Iterator[Any]], cancel: CancelToken, name: str) -> Job:
    """A (not yet started) job: ``produce``'s events computed on a thread of its own, relayed by a napari worker
    (started by ``job.worker.start()``); errors go to the widget's ``errored`` handler."""
    finished = threading.Event()
    computation = Computation(produce, finished, name)
    worker = thread_worker(computation.relay, start_thread=False, ignore_errors=True)(cancel)
    return Job(worker, cancel, finished, computation.thread)


def frozen_after_first_step(events: Iterator[Any]) -> Iterator[Any]:
    """``events`` passed on; after a first step (torch's lazy imports are done too) the objects alive are frozen
    out of the garbage collector's sight, only where S4MI owns the process (``host``)."""
    for event in events:
        if isinstance(event, Progress):
            host.freeze_startup_objects()
        yield event


def _training(project: Project, config: TrainConfig, run_dir: Path, resume: bool, cancel: CancelToken) -> Iterator[Any]:
    from ..core.engine import train  # torch is imported here, off the GUI thread

    yield from frozen_after_first_step(train(project, config, run_dir, cancel=cancel, resume=resume))


def start_training(project: Project, config: TrainConfig, run_dir: Path, resume: bool = False) -> Job:
    """A (not yet started) job yielding the engine's events for one run."""
    cancel = CancelToken()
    return start_job(partial(_training, project, config, run_dir, resume, cancel), cancel, "s4mi-training")


def _ssl_training(
    project: Project, config: SegConfig, out: Path, ssl_run: Path, pretraining: dict, cancel: CancelToken
) -> Iterator[Any]:
    from ..core.ssl_init import train_with_ssl_init

    yield from frozen_after_first_step(train_with_ssl_init(project, config, out, ssl_run, cancel, pretraining))


def start_ssl_training(
    project: Project, config: SegConfig, out: Path, ssl_run: Path, pretraining: dict | None = None
) -> Job:
    """A (not yet started) job: both encoders pretrained in ``ssl_run`` unless finished there (``pretraining``:
    its settings), then ``config`` trained from them into ``out`` (``--init ssl``); Stage events mark the two."""
    cancel = CancelToken()
    produce = partial(_ssl_training, project, config, out, ssl_run, dict(pretraining or {}), cancel)
    return start_job(produce, cancel, "s4mi-training")


@dataclass(frozen=True)
class SlideResult:
    """One predicted slide; arrays only for the slide that was on show (the others are read from disk)."""

    slide_id: str
    done: int
    total: int
    labels: Any = None
    disagreement: Any = None
    note: str | None = None  # about how the slide was cut (SegPredictor.tiling_note)


def _prediction(
    project: Project,
    run_dir: Path,
    slide_ids: list[str],
    show_id: str | None,
    which: str,
    device: str,
    large_slides: str,
    cancel: CancelToken,
) -> Iterator[SlideResult]:
    from ..core.device import release_memory
    from ..core.predictor import open_predictor

    predictor = open_predictor(run_dir, which=which, device=device)
    try:
        for done, slide_id in enumerate(slide_ids, start=1):
            if cancel.cancelled:
                return
            with project.open_slide(slide_id) as slide:
                note = predictor.tiling_note(slide.shape, large_slides)
                result = predictor.predict(slide, large_slides=large_slides)
            labels = result.labels.astype("uint8", copy=False)
            project.save_prediction(slide_id, labels, result.disagreement)
            host.freeze_startup_objects()  # owned process only; no-op after the first time
            shown = slide_id == show_id
            dis = result.disagreement if shown else None
            yield SlideResult(slide_id, done, len(slide_ids), labels if shown else None, dis, note)
    finally:
        device_used = predictor.device
        del predictor
        release_memory(device_used)


def start_prediction(
    project: Project,
    run_dir: Path,
    slide_ids: list[str],
    show_id: str | None,
    which: str,
    device: str,
    large_slides: str = "tile",
) -> Job:
    """A (not yet started) job predicting slides into the project, yielding one SlideResult per slide;
    ``large_slides``: slides over the tile threshold tiled or resized whole (``tasks.segmentation.tiling_spec``)."""
    cancel = CancelToken()
    produce = partial(_prediction, project, run_dir, slide_ids, show_id, which, device, large_slides, cancel)
    return start_job(produce, cancel, "s4mi-prediction")
