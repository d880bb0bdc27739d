"""Supervised baseline: one U-Net (ResNet encoder) on the labeled slides only (Singh & Cirrone's DEDL)."""

from __future__ import annotations

import torch

from ..config import SegConfig
from ..losses import supervised_loss
from .base import SegMethod


class SupervisedSeg(SegMethod):
    """½(Dice + CE) on labeled images; unlabeled images are ignored."""

    name = "supervised"

    def __init__(
        self,
        config: SegConfig,
        num_classes: int,
        device: torch.device,
        precision: str,
        weights: str | None = None,
    ):
        super().__init__(config, num_classes, device, precision)
        self._add("cnn", config.cnn, weights)
        self.make_optimizers()

    def losses(self, step: int, x_l: torch.Tensor, y_l: torch.Tensor, x_u: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss": supervised_loss(self.forward("cnn", x_l), y_l)}
