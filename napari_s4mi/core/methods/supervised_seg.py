"""Supervised baseline: one U-Net (ResNet encoder) on the labeled slides only (Singh & Cirrone's DEDL)."""

from __future__ import annotations

import torch

from ..losses import supervised_loss
from .base import SegMethod


class SupervisedSeg(SegMethod):
    """½(Dice + CE) on labeled images; unlabeled images are ignored."""

    name = "supervised"

    network_names = ("cnn",)

    def losses(
        self, x_l: torch.Tensor, y_l: torch.Tensor, x_u: torch.Tensor, scalars: dict[str, float | torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        return {"loss": supervised_loss(self.forward("cnn", x_l), y_l)}
