"""A finished run scored on the experiment's test split (never seen in training or model selection).

Segmentation: each test slide predicted at full resolution with the output the run chose on validation, compared
with its mask as foreground (any non-zero class) against background. Two aggregates: *pooled* IoU and Dice (TP, FP,
FN summed over every test pixel: large lesions weigh more; the headline, as the engine's validation and the
README's earlier results) and the *per-image mean* (each slide weighs the same, as in the ISIC challenge; a slide
with no foreground in mask and prediction scores 1). Classification: per-slide probabilities (the mean over the
slide's tiles), macro and micro F1, macro recall (balanced accuracy), accuracy and macro AUROC (``cls_metrics``).
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import numpy as np

from ..metrics import ConfusionCounts
from ..project import Project

SEG_METRICS = ("iou", "dice", "iou_per_image", "dice_per_image")
CLS_METRICS = ("macro_f1", "micro_f1", "macro_recall", "accuracy", "macro_auroc")
HEADLINE = {"segmentation": "iou", "classification": "macro_f1"}
TABLED = {"segmentation": SEG_METRICS, "classification": ("macro_f1", "micro_f1", "macro_recall")}
PLOTTED = {"segmentation": ("iou", "dice"), "classification": ("macro_f1", "macro_recall")}
NAMES = {
    "iou": "IoU (pooled)",
    "dice": "Dice (pooled)",
    "iou_per_image": "IoU (per-image mean)",
    "dice_per_image": "Dice (per-image mean)",
    "macro_f1": "macro F1",
    "micro_f1": "micro F1",
    "macro_recall": "macro recall",
    "accuracy": "accuracy",
    "macro_auroc": "macro AUROC",
}


def ids_to_test(project: Project, task: str) -> list[str]:
    """The test slides with ground truth."""
    if task == "segmentation":
        return project.annotated_ids(split="test")
    return project.labeled_ids(split="test")


def parameter_counts(networks: dict[str, Any]) -> dict[str, Any]:
    """Parameters per network and their total (every network the method trains)."""
    per = {name: int(sum(p.numel() for p in net.parameters())) for name, net in networks.items()}
    return {"total": sum(per.values()), "networks": per}


def evaluate_run(project: Project, task: str, run_dir: Path, device: str = "auto") -> dict[str, Any]:
    """Metrics, per-slide scores, parameter counts and the output used, of ``run_dir`` on the test split."""
    from ..predictor import open_predictor

    predictor = open_predictor(Path(run_dir), device=device)
    try:
        ids = ids_to_test(project, task)
        score = _segmentation if task == "segmentation" else _classification
        result = score(project, predictor, ids)
        result["params"] = parameter_counts(predictor.method.networks)
        result["output"] = predictor.which
        result["test_slides"] = len(ids)
        return result
    finally:
        predictor.method.close()
        del predictor
        gc.collect()


def _segmentation(project: Project, predictor: Any, ids: list[str]) -> dict[str, Any]:
    pooled = ConfusionCounts()
    per_slide = {}
    for slide_id in ids:
        with project.open_slide(slide_id) as slide:
            labels = predictor.predict(slide, batch_size=16).labels
        counts = ConfusionCounts()
        counts.add(np.asarray(labels), project.read_mask(slide_id))
        pooled.tp, pooled.fp, pooled.fn = pooled.tp + counts.tp, pooled.fp + counts.fp, pooled.fn + counts.fn
        per_slide[slide_id] = {"iou": counts.iou(), "dice": counts.f1()}
    metrics = {
        "iou": pooled.iou(),
        "dice": pooled.f1(),
        "iou_per_image": float(np.mean([v["iou"] for v in per_slide.values()])),
        "dice_per_image": float(np.mean([v["dice"] for v in per_slide.values()])),
    }
    return {"metrics": metrics, "per_slide": per_slide}


def _classification(project: Project, predictor: Any, ids: list[str]) -> dict[str, Any]:
    from ..cls_metrics import classification_report

    classes = list(predictor.classes)
    probs, targets = [], []
    for slide_id in ids:
        with project.open_slide(slide_id) as slide:
            probs.append(predictor.predict(slide).probs)
        labels = project.labels_of(slide_id) or []
        if predictor.multi_label:
            targets.append([1.0 if c in labels else 0.0 for c in classes])
        else:
            targets.append(classes.index(labels[0]))
    report = classification_report(
        np.asarray(targets), np.stack(probs), predictor.multi_label, classes, predictor.config.threshold
    )
    metrics = {name: float(getattr(report, name)) for name in CLS_METRICS}
    per_slide = {
        slide_id: {"target": project.labels_of(slide_id), "probs": [round(float(p), 6) for p in row]}
        for slide_id, row in zip(ids, probs, strict=True)
    }
    return {"metrics": metrics, "per_slide": per_slide, "classes": classes, "report": report.details()}
