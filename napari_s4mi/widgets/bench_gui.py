"""GUI latency benchmark, run by `s4mi bench` as its own process on a (virtual) display.

Opens a shown viewer with the widgets, trains cross-teaching (cpu-small) from the Train widget and predicts a
1408×1876 slide from the Predict widget while a 5 ms timer measures the event loop's longest gap. Prints one
JSON line: train_max_gap_ms (from Start, PyTorch loading included), train_steady_max_gap_ms (after the first
step), train_gui_s_per_step (seconds per training step after the first, as the GUI saw them), predict_max_gap_ms
(after the Predict click's handler, without the final layer insertion), final_insert_ms, and the two click
handlers' durations (start_click_ms, predict_click_ms: napari's activity dock adds a bar there).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SLIDE_SHAPE = (1408, 1876)


def make_project(folder: Path, n_slides: int = 6) -> Path:
    """Sample slides upscaled to 1408×1876 with their masks imported (all annotated but the first)."""
    from skimage.io import imsave
    from skimage.transform import resize

    from ..core.io import open_slide, read_mask
    from ..core.project import Project
    from ..core.sample import sample_dir

    slides, masks = folder / "slides", folder / "masks"
    slides.mkdir(parents=True)
    masks.mkdir()
    for path in sorted((sample_dir() / "images").iterdir())[:n_slides]:
        with open_slide(path) as slide:
            image = slide.read()
        big = (resize(image, SLIDE_SHAPE, preserve_range=True, anti_aliasing=False)).astype(np.uint8)
        imsave(slides / f"{path.stem}.png", big, check_contrast=False)
        mask = read_mask(sample_dir() / "masks" / f"{path.stem}_segmentation.png") > 0
        big_mask = resize(mask, SLIDE_SHAPE, order=0, preserve_range=True, anti_aliasing=False).astype(np.uint8)
        if path != sorted((sample_dir() / "images").iterdir())[0]:
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


SETTLE_S = 1.0  # after inserting layers, napari uploads their textures at its next paints


def with_first_paint(window: tuple[float, float], gaps: list[tuple[float, float]]) -> tuple[float, float]:
    """(insertion ms, the window to leave out of the predicting gaps): the insertion plus the longest event-loop
    gap of the SETTLE_S after it, where napari first draws the new layers (texture upload) — that paint belongs to
    the insertion, not to the prediction."""
    start, end = window
    settling = [b - a for a, b in gaps if end - 1e-3 <= a <= end + SETTLE_S]
    return 1000.0 * (end - start + max(settling, default=0.0)), (start, end + SETTLE_S)


def run(iterations: int, device: str) -> dict:
    import napari
    from qtpy.QtWidgets import QApplication

    from .latency import EventLoopGaps
    from .launch import dock_widgets
    from .session import session_for

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

        gaps = EventLoopGaps().start()
        tick = time.perf_counter()
        train_w.start_button.click()
        start_click_ms = 1000 * (time.perf_counter() - tick)
        _wait(app, lambda: train_w.progress_bar.value() >= 1, 600)
        steady = EventLoopGaps().start()
        _wait(app, lambda: not train_w.job.running, 3600)
        _wait(app, lambda: not train_w.job.worker.is_running, 30)
        gaps.stop()
        steady.stop()
        if train_w.last_error:
            raise RuntimeError(train_w.last_error)

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
        predict_gaps.stop()
        inserts = [with_first_paint(window, predict_gaps.gaps) for window in predict_w.insert_windows]
        for _, (start, end) in inserts:
            predict_gaps.exclude(start, end)
        if predict_w.last_error:
            raise RuntimeError(predict_w.last_error)
        insert_ms = max((ms for ms, _ in inserts), default=float("nan"))
        result = {
            "train_max_gap_ms": round(gaps.longest_ms(), 1),
            "train_steady_max_gap_ms": round(steady.longest_ms(), 1),
            "train_steady_gaps_over_50ms": steady.count_over(50.0),
            "train_steady_seconds": round(sum(steady.kept_ms()) / 1000.0, 1),
            "train_gui_s_per_step": round(sum(steady.kept_ms()) / 1000.0 / max(iterations - 1, 1), 2),
            "predict_max_gap_ms": round(predict_gaps.longest_ms(), 1),
            "predict_gaps_over_50ms": predict_gaps.count_over(50.0),
            "predict_longest_at_s": round(predict_gaps.longest_at_s(), 2),
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
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    result = run(args.iterations, args.device)
    result["triton_blocked"] = "triton" in sys.modules and sys.modules["triton"] is None
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
