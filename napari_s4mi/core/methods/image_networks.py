"""What the image-level methods share: networks built from backbone specs, channels_last CNNs, embeddings."""

from __future__ import annotations

import torch
from torch import nn

from ..models.classifiers import build_backbone, is_transformer
from ..models.weights import WeightsReport
from .base import Method


class ImageMethod(Method):
    """Base of the classification and pretraining methods: backbones from ``config.networks`` specs."""

    def backbone(self, name: str, weights: str | None, report: bool = True) -> nn.Module:
        """The backbone of network ``name``; ``weights`` overrides the spec's; its weights report is kept for the
        user unless ``report`` is off (weights loaded afterwards report themselves)."""
        spec = dict(self.config.networks[name])
        if weights is not None:
            spec["weights"] = weights
        module, weights_report = self.build_backbone(spec)
        if report:
            self.reports.append(weights_report)
        return module

    def build_backbone(self, spec: dict) -> tuple[nn.Module, WeightsReport]:
        """A backbone and its weights report from a network spec (timm classification backbones here)."""
        return build_backbone(spec, self.config.input_size)

    def add_image_network(self, name: str, module: nn.Module) -> nn.Module:
        module = self.add_network(name, module)
        if self.channels_last and not is_transformer(self.config.networks.get(name, {}).get("arch", "vit_")):
            module.to(memory_format=torch.channels_last)
        return module

    def run(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """Network ``name`` on ``x`` (channels_last for CNNs where that layout is faster)."""
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.networks[name](x)


def batch_spread(z: torch.Tensor) -> torch.Tensor:
    """Mean over dimensions of the standard deviation across the batch of L2-normalised embeddings: about
    1/sqrt(D) when they spread, 0 when they collapse to one point."""
    z = nn.functional.normalize(z.detach().float(), dim=-1)
    return z.std(dim=0).mean()
