"""GUI latency while classifying, run by `s4mi bench` (part ``gui``) as its own process on a (virtual) display:
``python -m s4mi_bench.gui_cls_latency`` (with ``benchmarks/`` on PYTHONPATH).

Opens a shown viewer with the widgets over the classification sample (slides upscaled to 1408×1876, so that
prediction and saliency tile them), runs CASS pretraining then fine-tuning (``cpu-small``) as one job from the
Train widget, predicts the slide on show, and computes its saliency map from the Predict widget, while a 5 ms timer
measures the event loop's longest gap. Measured from outside the widgets (the job's ``yielded`` signal, the
viewer's layer insertions). Prints one JSON line: pretrain_steady_max_gap_ms (after the first pretraining step,
until fine-tuning starts), finetune_max_gap_ms (from the switch of stage to the end), predict_max_gap_ms and
saliency_max_gap_ms (after the click, without the pass that inserted the layer and its first paint, reported as
saliency_insert_ms), their counts of gaps over 50 ms, and seconds per step as the GUI received them.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .event_loop import EventLoopGaps
from .gui_latency import SETTLE_S, SLIDE_SHAPE, _wait, add_guest_argument, insertion_windows, measure_and_print

GAP_MS = 50.0


def make_cls_project(folder: Path) -> Path:
    """The classification sample's slides upscaled to SLIDE_SHAPE, with every label imported."""
    from skimage.io import imsave
    from skimage.transform import resize

    from napari_s4mi.core.io import open_slide
    from napari_s4mi.core.project import Project
    from napari_s4mi.core.sample import cls_sample_dir

    slides = folder / "slides"
    slides.mkdir(parents=True)
    for path in sorted((cls_sample_dir() / "images").iterdir()):
        with open_slide(path) as slide:
            image = slide.read()
        big = resize(image, SLIDE_SHAPE, preserve_range=True, anti_aliasing=False).astype(np.uint8)
        imsave(slides / f"{path.stem}.png", big, check_contrast=False)
    labels = (cls_sample_dir() / "labels.csv").read_text().replace(".jpg", ".png")
    (folder / "labels.csv").write_text(labels)
    project = Project.create(slides, project_dir=folder / "project")
    project.import_labels_csv(folder / "labels.csv")
    return project.root


def longest_within(gaps: list[tuple[float, float]], start: float, end: float) -> tuple[float, int]:
    """The longest gap (ms) that began in [start, end), and how many there were over GAP_MS."""
    inside = [1000.0 * (b - a) for a, b in gaps if start <= a < end]
    return max(inside, default=float("nan")), sum(ms > GAP_MS for ms in inside)


def _median_step(times: list[float]) -> float:
    return round(float(np.median(np.diff(times))), 2) if len(times) > 1 else float("nan")


def _settle(app) -> None:
    deadline = time.perf_counter() + SETTLE_S
    while time.perf_counter() < deadline:
        app.processEvents()
        time.sleep(0.002)


def _timed_job(app, click, job_of, inserted: list[float]) -> tuple[EventLoopGaps, float]:
    """Click, then measure gaps until the job's worker ended and the inserted layers settled (their insertion
    window left out); returns the gaps and the insertion window's ms."""
    click()
    gaps = EventLoopGaps().start()
    _wait(app, lambda: job_of() is not None and not job_of().running, 900)
    _wait(app, lambda: not job_of().worker.is_running, 30)
    for _ in range(20):
        app.processEvents()
    _settle(app)
    gaps.stop()
    windows = insertion_windows(inserted, gaps.gaps)
    for _, (start, end) in windows:
        gaps.exclude(start, end)
    return gaps, max((ms for ms, _ in windows), default=float("nan"))


def run(pretrain_steps: int, finetune_steps: int, device: str) -> dict:
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_s4mi.core.events import Progress, Stage
    from napari_s4mi.widgets.launch import dock_widgets
    from napari_s4mi.widgets.session import session_for

    with tempfile.TemporaryDirectory() as tmp:
        root = make_cls_project(Path(tmp))
        viewer = napari.Viewer(show=True)
        app = QApplication.instance()
        widgets = dock_widgets(viewer)
        widgets["Project"].open_folder(str(root))
        session = session_for(viewer)
        session.show_slide(session.project.ids[0])
        train_w, predict_w = widgets["Train"], widgets["Predict"]
        train_w.task.setCurrentText("classification")
        form = train_w.cls_form
        form.preset.setCurrentText("cpu-small")
        form.pretraining.setCurrentText("cass")
        form.reuse.setCurrentIndex(0)
        form.pretrain_iterations.setValue(pretrain_steps)
        form.iterations.setValue(finetune_steps)
        form.device.setCurrentText(device)
        for _ in range(50):
            app.processEvents()

        steps: dict[str, list[float]] = {"pretraining": [], "fine-tuning": []}  # step arrival times by stage
        stage_at: dict[str, float] = {}

        def on_event(event) -> None:
            now = time.perf_counter()
            if isinstance(event, Stage):
                stage_at[event.name] = now
            elif isinstance(event, Progress):
                steps["fine-tuning" if "fine-tuning" in stage_at else "pretraining"].append(now)

        gaps = EventLoopGaps().start()
        train_w.start_button.click()
        train_w.job.worker.yielded.connect(on_event)
        _wait(app, lambda: len(steps["pretraining"]) >= 1, 900)
        _wait(app, lambda: not train_w.job.running, 3600)
        _wait(app, lambda: not train_w.job.worker.is_running, 30)
        gaps.stop()
        if train_w.last_error:
            raise RuntimeError(train_w.last_error)
        end = gaps.gaps[-1][1]
        switch = stage_at.get("fine-tuning", end)
        pretrain_ms, pretrain_over = longest_within(gaps.gaps, steps["pretraining"][0], switch)
        finetune_ms, finetune_over = longest_within(gaps.gaps, switch, end)

        inserted: list[float] = []
        viewer.layers.events.inserted.connect(lambda _event: inserted.append(time.perf_counter()))
        predict_w.refresh_runs()
        predict_w.run_box.setCurrentIndex(predict_w.run_box.findData(str(train_w.run_dir)))
        predict_w.scope.setCurrentText("current slide")
        predict_w.device.setCurrentText(device)
        predict_gaps, _ = _timed_job(app, predict_w.predict_button.click, lambda: predict_w.job, inserted)
        if predict_w.last_error:
            raise RuntimeError(predict_w.last_error)

        panel = predict_w.cls_panel
        panel.class_box.setCurrentIndex(0)
        panel.kind_box.setCurrentText("gradient")
        inserted.clear()
        saliency_gaps, insert_ms = _timed_job(app, panel.show_saliency, lambda: panel.job, inserted)
        if panel.last_error:
            raise RuntimeError(panel.last_error)
        layer = session.layers.get("saliency")
        result = {
            "pretrain_steady_max_gap_ms": round(pretrain_ms, 1),
            "pretrain_gaps_over_50ms": pretrain_over,
            "pretrain_gui_s_per_step": _median_step(steps["pretraining"]),
            "finetune_max_gap_ms": round(finetune_ms, 1),
            "finetune_gaps_over_50ms": finetune_over,
            "finetune_gui_s_per_step": _median_step(steps["fine-tuning"]),
            "predict_max_gap_ms": round(predict_gaps.longest_ms(), 1),
            "predict_gaps_over_50ms": predict_gaps.count_over(GAP_MS),
            "saliency_max_gap_ms": round(saliency_gaps.longest_ms(), 1),
            "saliency_gaps_over_50ms": saliency_gaps.count_over(GAP_MS),
            "saliency_s": round(saliency_gaps.gaps[-1][1] - saliency_gaps.gaps[0][0] - SETTLE_S, 2),
            "saliency_insert_ms": round(insert_ms, 1),
            "saliency_shape": list(layer.data.shape) if layer is not None else None,
            "pretrain_steps": pretrain_steps,
            "finetune_steps": finetune_steps,
            "slide": "x".join(map(str, SLIDE_SHAPE)),
            "device": device,
        }
        viewer.close()
        return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    quick = os.environ.get("S4MI_BENCH_QUICK", "0") == "1"
    parser.add_argument("--pretrain-steps", type=int, default=6 if quick else 16)
    parser.add_argument("--finetune-steps", type=int, default=4 if quick else 10)
    parser.add_argument("--device", default="cpu")
    add_guest_argument(parser)
    args = parser.parse_args(argv)
    return measure_and_print(args.guest, lambda: run(args.pretrain_steps, args.finetune_steps, args.device))


if __name__ == "__main__":
    sys.exit(main())
