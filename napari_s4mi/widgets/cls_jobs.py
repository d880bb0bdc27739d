"""Classification jobs for the widgets: the pretrain-then-fine-tune pipeline, per-slide class prediction, and a
slide's saliency map, each computed on a thread of its own (``workers``) and relayed to the GUI as plain values."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.events import CancelToken
from .workers import Job, frozen_after_first_step, start_job

if TYPE_CHECKING:
    from ..core.cls_pipeline import ClsPipeline
    from ..core.project import Project


def _pipeline(project: Project, pipeline: ClsPipeline, out: Path, resume: bool, cancel: CancelToken) -> Iterator[Any]:
    from ..core.cls_pipeline import run_pipeline  # torch is imported here, off the GUI thread

    yield from frozen_after_first_step(run_pipeline(project, pipeline, out, cancel=cancel, resume=resume))


def start_pipeline(project: Project, pipeline: ClsPipeline, out: Path, resume: bool = False) -> Job:
    """A (not yet started) job running a classification pipeline; yields the engine's events and Stage events."""
    cancel = CancelToken()
    return start_job(partial(_pipeline, project, pipeline, out, resume, cancel), cancel, "s4mi-training")


@dataclass(frozen=True)
class ClassScores:
    """One slide's class probabilities and predicted class(es)."""

    slide_id: str
    probs: tuple[float, ...]
    predicted: tuple[str, ...]
    done: int
    total: int


@dataclass(frozen=True)
class ClassRun:
    """Sent first: the run's classes and the output it predicts with."""

    classes: tuple[str, ...]
    which: str
    networks: tuple[str, ...]


def _classify(project: Project, run_dir: Path, slide_ids: list[str], which: str, device: str, cancel: CancelToken):
    from ..core.device import release_memory
    from ..core.predictor import open_predictor

    predictor = open_predictor(run_dir, which=which, device=device)
    try:
        yield ClassRun(tuple(predictor.classes), predictor.which, tuple(predictor.method.networks))
        for done, slide_id in enumerate(slide_ids, start=1):
            if cancel.cancelled:
                return
            with project.open_slide(slide_id) as slide:
                scores = predictor.predict(slide)
            probs = tuple(float(p) for p in scores.probs)
            yield ClassScores(slide_id, probs, tuple(scores.predicted), done, len(slide_ids))
    finally:
        device_used = predictor.device
        del predictor
        release_memory(device_used)


def start_classification(project: Project, run_dir: Path, slide_ids: list[str], which: str, device: str) -> Job:
    """A (not yet started) job yielding a ClassRun, then one ClassScores per slide."""
    cancel = CancelToken()
    produce = partial(_classify, project, run_dir, slide_ids, which, device, cancel)
    return start_job(produce, cancel, "s4mi-prediction")


@dataclass(frozen=True)
class SaliencyMap:
    """A slide's saliency for one class and network, float32 (H, W) in [0, 1]."""

    slide_id: str
    class_name: str
    network: str
    kind: str
    data: Any


def _saliency(project, run_dir, slide_id: str, class_name: str, network: str | None, kind: str, device: str):
    from ..core.device import release_memory
    from ..core.predictor import open_predictor

    predictor = open_predictor(run_dir, device=device)
    try:
        with project.open_slide(slide_id) as slide:
            index = predictor.class_index(class_name)
            data = predictor.saliency(slide, index, network=network, kind=kind)
        yield SaliencyMap(slide_id, class_name, network or predictor.which, kind, data)
    finally:
        device_used = predictor.device
        del predictor
        release_memory(device_used)


def start_saliency(
    project: Project, run_dir: Path, slide_id: str, class_name: str, network: str | None, kind: str, device: str
) -> Job:
    """A (not yet started) job computing one slide's saliency map (one SaliencyMap)."""
    produce = partial(_saliency, project, run_dir, slide_id, class_name, network, kind, device)
    return start_job(produce, CancelToken(), "s4mi-saliency")
