"""How segmentation runs generalise: pooled IoU and Dice on a project's test split and on its stress set
(the same test images rescaled and recoloured: core/stress.py), plus how much of large lesions is found.

Nothing here trains or tunes: the test split and its variants are only predicted; the large variant (over the
tile threshold) twice, tiled as in training and resized whole (``s4mi predict --large-slides whole``). Large lesions
are those that cover over 30% of the frame; "area ratio" is predicted foreground over true foreground on them (< 1:
under-segmented).

    python benchmarks/seg_generalisation.py --project bench-out/isic/project --runs bench-out/isic/run-a run-b \
        --out bench-out/generalisation
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from napari_s4mi.core.io import open_slide, write_mask
from napari_s4mi.core.metrics import ConfusionCounts
from napari_s4mi.core.predictor import open_predictor
from napari_s4mi.core.project import Project
from napari_s4mi.core.stress import VARIANTS, stress_pair

LARGE = 0.3  # share of the frame above which a lesion counts as large
WHOLE = "large, resized whole"  # the large variant predicted with --large-slides whole


def write_stress_set(project: Project, ids: list[str], folder: Path) -> dict[str, list[tuple[Path, Path]]]:
    """Each variant's (image, mask) files of the test slides, written once under ``folder``."""
    from skimage.io import imsave

    pairs: dict[str, list[tuple[Path, Path]]] = {variant: [] for variant in VARIANTS}
    for slide_id in ids:
        with project.open_slide(slide_id) as slide:
            image = slide.read()
        mask = (project.read_mask(slide_id) > 0).astype(np.uint8)
        for variant in VARIANTS:
            image_path = folder / variant / "images" / f"{Path(slide_id).stem}.png"
            mask_path = folder / variant / "masks" / f"{Path(slide_id).stem}.png"
            if not image_path.exists():
                image_path.parent.mkdir(parents=True, exist_ok=True)
                mask_path.parent.mkdir(parents=True, exist_ok=True)
                v_image, v_mask = stress_pair(image, mask, variant)
                imsave(image_path, v_image, check_contrast=False)
                write_mask(mask_path, v_mask)
            pairs[variant].append((image_path, mask_path))
    return pairs


def evaluate(run_dir: Path, pairs: list[tuple[Path, Path]], large_slides: str = "tile") -> dict[str, float]:
    """Pooled IoU and Dice of a run on (image, mask) files, and the area ratio on large lesions; ``large_slides``:
    how slides over the run's tile threshold are predicted (tiled, or resized whole)."""
    from napari_s4mi.core.io import read_mask

    predictor = open_predictor(run_dir, device="cpu")
    counts = ConfusionCounts()
    large_pred = large_true = 0
    for image_path, mask_path in pairs:
        truth = read_mask(mask_path) > 0
        with open_slide(image_path) as slide:
            predicted = predictor.predict(slide, batch_size=16, large_slides=large_slides).labels > 0
        counts.add(predicted.astype(np.uint8), truth.astype(np.uint8))
        if truth.mean() > LARGE:
            large_pred, large_true = large_pred + int(predicted.sum()), large_true + int(truth.sum())
    ratio = large_pred / large_true if large_true else float("nan")
    return {"iou": counts.iou(), "dice": counts.f1(), "large_area_ratio": ratio}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, required=True, help="project whose test split is evaluated")
    parser.add_argument("--runs", type=Path, nargs="+", required=True, help="trained segmentation run folders")
    parser.add_argument("--out", type=Path, required=True, help="where the stress set and results.json go")
    parser.add_argument("--limit", type=int, default=0, help="evaluate only the first N test slides (0: all)")
    args = parser.parse_args()
    project = Project.open(args.project)
    ids = project.annotated_ids(split="test")
    ids = ids[: args.limit] if args.limit else ids
    if not ids:
        raise SystemExit("seg_generalisation: the project has no annotated test slides (assign splits first)")
    pairs = write_stress_set(project, ids, args.out / "stress")
    columns = [*VARIANTS, WHOLE]
    results = {
        str(run): {v: evaluate(run, pairs[v]) for v in VARIANTS} | {WHOLE: evaluate(run, pairs["large"], "whole")}
        for run in args.runs
    }
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    print(f"{len(ids)} test slides\n\n| run | " + " | ".join(columns) + " | large-lesion area ratio |")
    print("|---" * (len(columns) + 2) + "|")
    for run, by_variant in results.items():
        cells = " | ".join(f"{by_variant[v]['iou']:.3f}" for v in columns)
        print(f"| {Path(run).name} | {cells} | {by_variant['original']['large_area_ratio']:.2f} |")


if __name__ == "__main__":
    main()
