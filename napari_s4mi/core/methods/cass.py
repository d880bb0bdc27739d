"""CASS self-supervised pretraining (Singh et al.): a CNN and a ViT learn from each other on unlabeled images.

Both networks see the same augmented image (``cross_view``: each its own view of it, so that agreeing on the
image's colour statistics alone is not enough) and end in a projection of the same width; the loss is
2 - 2 cos(z_cnn, z_vit) on their L2-normalised outputs, averaged over the batch. It is symmetric: each network is
pulled towards the other (the gradient reaching each one is that of the loss with the other's output held fixed).
Gradients are zeroed at every step by the engine (the reference code never zeroes them).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
from torch import nn

from ..cls_config import CassConfig
from ..models.classifiers import ProjectedBackbone
from .base import Batch
from .image_networks import ImageMethod, batch_spread


def cass_loss(z_cnn: torch.Tensor, z_vit: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of 2 - 2 cos between the two networks' embeddings of the same images."""
    a = nn.functional.normalize(z_cnn.float(), dim=-1)
    b = nn.functional.normalize(z_vit.float(), dim=-1)
    return (2.0 - 2.0 * (a * b).sum(dim=-1)).mean()


class Cass(ImageMethod):
    """The CNN and the ViT (``config.networks``, in that order), each with a projection to ``projection_dim``."""

    config: CassConfig

    def build(self, weights: str | None) -> None:
        for name in self.config.networks:
            self.add_image_network(name, ProjectedBackbone(self.backbone(name, weights), self.config.projection_dim))

    def embed(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: self.run(name, x) for name in self.networks}

    def losses(self, batch: Batch, scalars: Mapping) -> dict[str, torch.Tensor]:
        if self.config.cross_view:  # views grouped by view: the first half to the CNN, the second to the other
            views = dict(zip(self.networks, batch["view"].chunk(2), strict=True))
            z = {name: self.run(name, x) for name, x in views.items()}
        else:
            z = self.embed(batch["view"])
        cnn, vit = z.values()
        spread = {f"spread_{name}": batch_spread(value) for name, value in z.items()}
        return {"loss": cass_loss(cnn, vit), **spread}

    @property
    def embedding_width(self) -> int:
        return self.config.projection_dim

    @torch.no_grad()
    def embedding_spread(self, x: torch.Tensor) -> float:
        """The smaller batch spread of the two networks' projections as training sees them (batch statistics in
        the BatchNorms, on copies so that no running statistic moves); collapse: 0, spread: ~1/sqrt(D)."""
        spreads = []
        for net in self.networks.values():
            copy_ = copy.deepcopy(net).train()
            spreads.append(float(batch_spread(copy_(x))))
        return min(spreads)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each network's backbone features (what fine-tuning starts from)."""
        self.eval_mode()
        return {name: net.backbone(x).float() for name, net in self.networks.items()}
