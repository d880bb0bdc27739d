"""GUI latency benchmark, run by `s4mi bench` as its own process on a (virtual) display:
``python -m s4mi_bench.gui_latency`` (with ``benchmarks/`` on PYTHONPATH).

Opens a shown viewer with the widgets, trains cross-teaching (cpu-small) from the Train widget and predicts a
1408×1876 slide from the Predict widget while a 5 ms timer measures the event loop's longest gap. Everything is
measured from outside the widgets: the training steps by the job's ``yielded`` signal (connected after the
click), the result layers by ``viewer.layers.events.inserted``. Prints one JSON line: train_max_gap_ms (from
Start, PyTorch loading included), train_steady_max_gap_ms (after the first step), train_gui_s_per_step (seconds
per training step after the first, as the GUI received them), predict_max_gap_ms (after the Predict click's
handler, without the pass that inserted the result layers and their first paint), final_insert_ms, and the two
click handlers' durations (start_click_ms, predict_click_ms: napari's activity dock adds a bar there).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

SLIDE_SHAPE = (1408, 1876)
SETTLE_S = 1.0  # after inserting layers, napari uploads their textures at its next paints


def make_project(folder: Path, n_slides: int = 6) -> Path:
    """Sample slides upscaled to 1408×1876 with their masks imported (all annotated but the first)."""
    from skimage.io import imsave
    from skimage.transform import resize

    from napari_s4mi.core.io import open_slide, read_mask
    from napari_s4mi.core.project import Project
    from napari_s4mi.core.sample import sample_dir

    slides, masks = folder / "slides", folder / "masks"
    slides.mkdir(parents=True)
    masks.mkdir()
    paths = sorted((sample_dir() / "images").iterdir())[:n_slides]
    for path in paths:
        with open_slide(path) as slide:
            image = slide.read()
        big = (resize(image, SLIDE_SHAPE, preserve_range=True, anti_aliasing=False)).astype(np.uint8)
        imsave(slides / f"{path.stem}.png", big, check_contrast=False)
        mask = read_mask(sample_dir() / "masks" / f"{path.stem}_segmentation.png") > 0
        big_mask = resize(mask, SLIDE_SHAPE, order=0, preserve_range=True, anti_aliasing=False).astype(np.uint8)
        if path != paths[0]:
            imsave(masks / f"{path.stem}.png", big_mask * 255, check_contrast=False)
    project = Project.create(slides, project_dir=folder / "project")
    project.import_masks(masks)
    return project.root


def _wait(app, condition, timeout_s: float) -> None:
    deadline = time.perf_counter() + timeout_s
    while not condition():
        if time.perf_counter() > deadline:
            raise TimeoutError("the GUI benchmark timed out")
        app.processEvents()
        time.sleep(0.002)


def insertion_windows(
    inserted_at: list[float], gaps: list[tuple[float, float]]
) -> list[tuple[float, tuple[float, float]]]:
    """For the times layers were inserted: (ms of the event-loop pass that inserted them plus the longest gap of
    the SETTLE_S after it, where napari first draws them; the window to leave out of the predicting gaps). Layers
    inserted in the same pass share one window."""
    windows: dict[tuple[float, float], tuple[float, tuple[float, float]]] = {}
    for at in inserted_at:
        holding = [(a, b) for a, b in gaps if a <= at <= b]
        if not holding:
            continue
        start, end = holding[0]
        settling = [b - a for a, b in gaps if end - 1e-3 <= a <= end + SETTLE_S]
        windows[(start, end)] = (1000.0 * (end - start + max(settling, default=0.0)), (start, end + SETTLE_S))
    return list(windows.values())


def run(iterations: int, device: str) -> dict:
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_s4mi.core.events import Progress
    from napari_s4mi.widgets.launch import dock_widgets
    from napari_s4mi.widgets.session import session_for

    from .event_loop import EventLoopGaps

    with tempfile.TemporaryDirectory() as tmp:
        root = make_project(Path(tmp))
        viewer = napari.Viewer(show=True)
        app = QApplication.instance()
        widgets = dock_widgets(viewer)
        widgets["Project"].open_folder(str(root))
        session = session_for(viewer)
        session.show_slide(session.project.ids[0])  # the unannotated slide
        train_w, predict_w = widgets["Train"], widgets["Predict"]
        form = train_w.form
        form.preset.setCurrentText("cpu-small")
        form.method.setCurrentText("cross-teaching")
        form.iterations.setValue(iterations)
        form.device.setCurrentText(device)
        for _ in range(50):
            app.processEvents()

        steps: list[float] = []  # when each training step reached the GUI thread

        def on_event(event) -> None:
            if isinstance(event, Progress):
                steps.append(time.perf_counter())

        gaps = EventLoopGaps().start()
        tick = time.perf_counter()
        train_w.start_button.click()
        start_click_ms = 1000 * (time.perf_counter() - tick)
        train_w.job.worker.yielded.connect(on_event)  # queued: no event is delivered before this returns
        _wait(app, lambda: len(steps) >= 1, 600)
        steady = EventLoopGaps().start()
        _wait(app, lambda: not train_w.job.running, 3600)
        _wait(app, lambda: not train_w.job.worker.is_running, 30)
        gaps.stop()
        steady.stop()
        if train_w.last_error:
            raise RuntimeError(train_w.last_error)

        inserted: list[float] = []
        viewer.layers.events.inserted.connect(lambda _event: inserted.append(time.perf_counter()))
        predict_w.refresh_runs()
        predict_w.scope.setCurrentText("current slide")
        predict_w.device.setCurrentText(device)
        tick = time.perf_counter()
        predict_w.predict_button.click()  # the click handler itself is reported on its own (predict_click_ms)
        predict_click_ms = 1000 * (time.perf_counter() - tick)
        predict_gaps = EventLoopGaps().start()
        _wait(app, lambda: not predict_w.job.running, 600)
        _wait(app, lambda: not predict_w.job.worker.is_running, 30)
        for _ in range(20):
            app.processEvents()
        deadline = time.perf_counter() + SETTLE_S  # the inserted layers' first paints
        while time.perf_counter() < deadline:
            app.processEvents()
            time.sleep(0.002)
        predict_gaps.stop()
        if predict_w.last_error:
            raise RuntimeError(predict_w.last_error)
        inserts = insertion_windows(inserted, predict_gaps.gaps)
        for _, (start, end) in inserts:
            predict_gaps.exclude(start, end)
        insert_ms = max((ms for ms, _ in inserts), default=float("nan"))
        per_step = float(np.median(np.diff(steps))) if len(steps) > 1 else float("nan")
        result = {
            "train_max_gap_ms": round(gaps.longest_ms(), 1),
            "train_steady_max_gap_ms": round(steady.longest_ms(), 1),
            "train_steady_gaps_over_50ms": steady.count_over(50.0),
            "train_steady_seconds": round(sum(steady.kept_ms()) / 1000.0, 1),
            "train_gui_s_per_step": round(per_step, 2),
            "train_steps_seen": len(steps),
            "predict_max_gap_ms": round(predict_gaps.longest_ms(), 1),
            "predict_gaps_over_50ms": predict_gaps.count_over(50.0),
            "predict_longest_at_s": round(predict_gaps.longest_at_s(), 2),
            "layers_inserted": len(inserted),
            "insert_at_s": [round(start - predict_gaps.gaps[0][0], 2) for _, (start, _end) in inserts],
            "predict_until_s": round(predict_gaps.gaps[-1][1] - predict_gaps.gaps[0][0], 2),
            "final_insert_ms": round(insert_ms, 1),
            "start_click_ms": round(start_click_ms, 1),
            "predict_click_ms": round(predict_click_ms, 1),
            "train_steps": iterations,
            "slide": "x".join(map(str, SLIDE_SHAPE)),
            "device": device,
        }
        viewer.close()
        return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    quick = os.environ.get("S4MI_BENCH_QUICK", "0") == "1"
    parser.add_argument("--iterations", type=int, default=8 if quick else 20)
    parser.add_argument("--device", default="cpu")
    add_guest_argument(parser)
    args = parser.parse_args(argv)
    return measure_and_print(args.guest, lambda: run(args.iterations, args.device))


def add_guest_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--guest", action="store_true", help="as in a plain `napari` with the plugin (no process-wide tweaks)"
    )


def measure_and_print(guest: bool, measure: Callable[[], dict]) -> int:
    """Run ``measure`` as `s4mi napari` (the process claimed: process-wide tweaks on) or as a guest in a plain
    napari, and print its result with the mode as one JSON line."""
    if not guest:
        from napari_s4mi.core.host import claim_process

        claim_process("s4mi bench")
    result = measure() | {"mode": "plain napari (guest)" if guest else "s4mi napari"}
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
