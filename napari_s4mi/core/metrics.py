"""Segmentation metrics computed from confusion counts, so they pool over images exactly."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ConfusionCounts:
    """Foreground (any non-zero label) true/false positives and false negatives, pooled over images."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, prediction: np.ndarray, target: np.ndarray) -> None:
        pred = np.asarray(prediction) > 0
        true = np.asarray(target) > 0
        if pred.shape != true.shape:
            raise ValueError(f"prediction shape {pred.shape} differs from target shape {true.shape}")
        self.tp += int(np.count_nonzero(pred & true))
        self.fp += int(np.count_nonzero(pred & ~true))
        self.fn += int(np.count_nonzero(~pred & true))

    def iou(self) -> float:
        denominator = self.tp + self.fp + self.fn
        return self.tp / denominator if denominator else 1.0

    def recall(self) -> float:
        denominator = self.tp + self.fn
        return self.tp / denominator if denominator else 1.0

    def precision(self) -> float:
        denominator = self.tp + self.fp
        return self.tp / denominator if denominator else 1.0

    def f1(self) -> float:
        """Harmonic mean of precision and recall (not recall alone, unlike some reference code)."""
        denominator = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / denominator if denominator else 1.0

    def summary(self) -> dict[str, float]:
        return {"iou": self.iou(), "f1": self.f1(), "recall": self.recall(), "precision": self.precision()}


def foreground_iou(prediction: np.ndarray, target: np.ndarray) -> float:
    """IoU of the foreground (any non-zero label) of one pair of label images."""
    counts = ConfusionCounts()
    counts.add(prediction, target)
    return counts.iou()
