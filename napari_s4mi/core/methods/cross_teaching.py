"""Cross-teaching between a CNN U-Net and a Swin-UNet (Luo et al., MIDL 2022), as used by S4MI."""

from __future__ import annotations

import torch

from ..losses import consistency_weight, cross_teaching_loss, supervised_loss
from .base import SegMethod


class CrossTeaching(SegMethod):
    """Labeled: ½(Dice + CE) per network. Unlabeled: Dice of each network against the other's argmax, × λ(t)."""

    name = "cross-teaching"

    network_names = ("cnn", "swin")

    def weight(self, step: int) -> float:
        if self.config.constant_lambda:
            return 1.0
        return consistency_weight(step, self.config.iterations, self.config.lambda_max, self.config.rampup_fraction)

    def step_scalars(self, step: int) -> dict[str, float]:
        return {"lambda": self.weight(step)}

    def losses(
        self, x_l: torch.Tensor, y_l: torch.Tensor, x_u: torch.Tensor, scalars: dict[str, float | torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        x = torch.cat([x_l, x_u]) if len(x_u) else x_l
        out_cnn = self.forward("cnn", x)
        out_swin = self.forward("swin", x)
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
