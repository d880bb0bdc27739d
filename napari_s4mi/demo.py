"""`s4mi demo`: the headless main job on the bundled sample project — create, train, predict, score."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np

from .core.sample import HELD_BACK, create_sample_project, sample_dir


def save_overview(path: Path, panels: list) -> None:
    """A figure per held-back slide: the slide with true (green) and predicted (magenta) outlines, and the
    CNN-Swin disagreement map."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(panels), 2, figsize=(7, 3.4 * len(panels)), squeeze=False)
    for row, (name, image, truth, predicted, disagreement) in zip(axes, panels, strict=True):
        row[0].imshow(image)
        row[0].contour(truth, levels=[0.5], colors="lime", linewidths=1.5)
        row[0].contour(predicted, levels=[0.5], colors="magenta", linewidths=1.5)
        row[0].set_title(f"{name}: truth (green), prediction (magenta)", fontsize=8)
        if disagreement is not None:
            shown = row[1].imshow(np.asarray(disagreement), cmap="magma", vmin=0, vmax=1)
            fig.colorbar(shown, ax=row[1], fraction=0.046)
        row[1].set_title("CNN-Swin disagreement (uncertainty)", fontsize=8)
        for axis in row:
            axis.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def run_demo(out: Path, iterations: int = 60) -> int:
    """Train cross-teaching on the sample project, predict the held-back slides, print their IoU."""
    from .console import drive
    from .core.engine import train
    from .core.io import open_slide, read_mask
    from .core.metrics import ConfusionCounts
    from .core.predictor import open_predictor
    from .core.registry import make_config
    from .core.writers import write_prediction

    out = Path(out)
    project = create_sample_project(out / "project")
    run_dir = out / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    config = make_config("segmentation", "cross-teaching", iterations=iterations, val_every=max(iterations // 3, 1))
    drive(train(project, config, run_dir))
    predictor = open_predictor(run_dir)
    counts = ConfusionCounts()
    (out / "predictions").mkdir(exist_ok=True)
    panels = []
    for name in HELD_BACK:
        with open_slide(sample_dir() / "images" / name) as slide:
            image = slide.read()
            prediction = predictor.predict(slide)
        truth = read_mask(sample_dir() / "masks" / f"{Path(name).stem}_segmentation.png") > 0
        counts.add(prediction.labels, truth)
        panels.append((name, image, truth, np.asarray(prediction.labels) > 0, prediction.disagreement))
        write_prediction(out / "predictions", Path(name).stem, prediction, len(predictor.classes), True)
    save_overview(out / "overview.png", panels)
    print(f"s4mi demo: {iterations} steps, prediction with {predictor.which}; held-back IoU {counts.iou():.3f}")
    print(
        f"s4mi demo: project {out / 'project'}, run {run_dir}, masks {out / 'predictions'}, figure "
        f"{out / 'overview.png'}",
        file=sys.stderr,
    )
    return 0
