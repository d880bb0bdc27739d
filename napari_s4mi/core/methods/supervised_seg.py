"""Supervised baseline: one U-Net (ResNet encoder) on the labeled slides only (Singh & Cirrone's DEDL)."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ..losses import supervised_loss
from .base import Batch
from .segmentation import SegMethod


class SupervisedSeg(SegMethod):
    """½(Dice + CE) on labeled images; the batch holds no unlabeled images."""

    def losses(self, batch: Batch, scalars: Mapping[str, float | torch.Tensor]) -> dict[str, torch.Tensor]:
        (cnn,) = self.config.networks
        return {"loss": supervised_loss(self.forward(cnn, batch["x_l"]), batch["y_l"])}
