"""Cross-teaching between a CNN U-Net and a Swin-UNet (Luo et al., MIDL 2022), as used by S4MI."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ..losses import consistency_weight, cross_teaching_loss, supervised_loss
from ..seg_config import CrossTeachingConfig
from .base import Batch
from .segmentation import SegMethod


class CrossTeaching(SegMethod):
    """Labeled: ½(Dice + CE) per network. Unlabeled: Dice of each network against the other's argmax, × λ(t)."""

    config: CrossTeachingConfig

    def weight(self, step: int) -> float:
        if self.config.constant_lambda:
            return 1.0
        return consistency_weight(step, self.config.iterations, self.config.lambda_max, self.config.rampup_fraction)

    def step_scalars(self, step: int) -> dict[str, float]:
        return {"lambda": self.weight(step)}

    def losses(self, batch: Batch, scalars: Mapping[str, float | torch.Tensor]) -> dict[str, torch.Tensor]:
        x_l, y_l, x_u = batch["x_l"], batch["y_l"], batch["x_u"]
        cnn, swin = self.config.networks  # the CNN first, then the transformer
        x = torch.cat([x_l, x_u]) if len(x_u) else x_l
        out_cnn = self.forward(cnn, x)
        out_swin = self.forward(swin, x)
        n = len(x_l)
        sup = supervised_loss(out_cnn[:n], y_l) + supervised_loss(out_swin[:n], y_l)
        if len(x_u):
            unsup = cross_teaching_loss(out_cnn[n:], out_swin[n:])
        else:
            unsup = torch.zeros((), device=x.device)
        weight = scalars["lambda"]
        return {
            "loss": sup + weight * unsup,
            "supervised": sup.detach(),
            "unsupervised": unsup.detach(),
            "lambda": torch.as_tensor(weight),
        }
