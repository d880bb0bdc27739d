"""Training methods, one module each; `make_method` picks one by name."""

from __future__ import annotations

import torch

from ..config import SegConfig
from ..errors import TrainingError
from .base import SegMethod


def make_method(
    config: SegConfig, num_classes: int, device: torch.device, precision: str, weights: str | None = None
) -> SegMethod:
    """Instantiate the configured segmentation method (weights overrides the networks' weight spec)."""
    if config.method == "cross-teaching":
        from .cross_teaching import CrossTeaching

        return CrossTeaching(config, num_classes, device, precision, weights)
    if config.method == "supervised":
        from .supervised_seg import SupervisedSeg

        return SupervisedSeg(config, num_classes, device, precision, weights)
    raise TrainingError(f"method '{config.method}' unknown: use cross-teaching or supervised")
