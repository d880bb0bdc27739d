"""ISIC-2017 label efficiency: cross-teaching with 50% of the masks against supervised training with 100%.

Same preset (cpu-small), same iterations, several seeds; pooled foreground IoU on a fixed, seeded test split,
measured at the slides' 256 px resolution. Needs ../shared/data/isic2017 (not run in CI).

    python benchmarks/isic_label_efficiency.py --data ../shared/data/isic2017 --out bench-out/isic
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from napari_s4mi.core.engine import train
from napari_s4mi.core.events import Done, Validation
from napari_s4mi.core.metrics import ConfusionCounts
from napari_s4mi.core.predictor import open_predictor
from napari_s4mi.core.project import Project
from napari_s4mi.core.registry import make_config

ARMS = (("cross-teaching", 0.5), ("supervised", 1.0))


def make_project(data: Path, out: Path) -> Project:
    """A project over the ISIC images with all masks imported and a fixed 70/10/20 split (seed 2017)."""
    project = Project.create(data / "images", project_dir=out / "project")
    if not project.annotated_ids():
        project.import_masks(data / "masks")
    project.assign_splits(val_fraction=0.1, test_fraction=0.2, seed=2017)
    return project


def test_iou(project: Project, run_dir: Path) -> float:
    """Pooled foreground IoU of the run's chosen network(s) on the test split at full slide resolution."""
    predictor = open_predictor(run_dir)
    counts = ConfusionCounts()
    for slide_id in project.annotated_ids(split="test"):
        with project.open_slide(slide_id) as slide:
            counts.add(predictor.predict(slide, batch_size=16).labels, project.read_mask(slide_id))
    return counts.iou()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/isic2017"))
    parser.add_argument("--out", type=Path, default=Path("bench-out/isic"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--iterations", type=int, default=400)
    args = parser.parse_args()
    project = make_project(args.data, args.out)
    print(
        f"slides: train {len(project.annotated_ids('train'))}, val {len(project.annotated_ids('val'))}, "
        f"test {len(project.annotated_ids('test'))}",
        flush=True,
    )
    results: dict[str, list[float]] = {}
    for seed in args.seeds:
        for method, fraction in ARMS:
            run_dir = args.out / f"{method}-{int(fraction * 100)}-seed{seed}"
            if not (run_dir / "last").exists():
                config = make_config(
                    "segmentation", method, "cpu-small", label_fraction=fraction, seed=seed, iterations=args.iterations
                )
                started = time.perf_counter()
                for event in train(project, config, run_dir):
                    if isinstance(event, Validation):
                        print(f"  {method} seed {seed} step {event.step}: {event.metrics}", flush=True)
                    if isinstance(event, Done):
                        print(f"  trained in {time.perf_counter() - started:.0f} s", flush=True)
            iou = test_iou(project, run_dir)
            results.setdefault(f"{method} {int(fraction * 100)}%", []).append(iou)
            print(f"{method} {int(fraction * 100)}% seed {seed}: test IoU {iou:.4f}", flush=True)
    print("\n| arm | labels | seeds | test IoU (mean ± sd) | per seed |\n|---|---|---|---|---|")
    for name, values in results.items():
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        method, labels = name.rsplit(" ", 1)
        print(
            f"| {method} | {labels} | {len(values)} | {statistics.mean(values):.3f} ± {sd:.3f} | "
            f"{', '.join(f'{v:.3f}' for v in values)} |"
        )
    (args.out / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
