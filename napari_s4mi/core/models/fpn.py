"""PiCIE's pixel-feature network: a ResNet encoder (segmentation-models-pytorch's) and a light FPN as in the
paper (1×1 lateral convolutions of the four stages to D channels, added top-down with bilinear upsampling) giving a
D-channel feature map at 1/4 of the input size. (smp's FPN decoder, with its 3×3 GroupNorm blocks, cost 4× the
encoder at 64 px.)

:class:`PicieNet` also keeps, as buffers, what PiCIE computes at each clustering: the ``labeler``, a frozen copy of
the features taken then (its weights buffers, so no optimiser sees them), the ``centroids`` of the two view families,
their cross-entropy ``weights``, the ``cluster_map`` from clusters to classes and the ``clustered`` flag. They are in
the state dict, so checkpoints, exact resumes, warm starts and prediction carry them. The labeler runs in eval mode,
with BatchNorm statistics recalibrated on the clustering sample (as are the features' own, for evaluation).
ImageNet weights come as for the U-Net (``unet.py``).
"""

from __future__ import annotations

from copy import deepcopy
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from .unet import _load_file, _load_imagenet
from .weights import WeightsReport, is_imagenet_spec, is_random_spec, random_report

STRIDE = 4  # the feature map is 1/4 of the input


class PicieFeatures(nn.Module):
    """(N, 3, H, W) images -> (N, dim, H/4, W/4) raw pixel features."""

    def __init__(self, encoder: nn.Module, channels: list[int], dim: int):
        super().__init__()
        self.encoder = encoder
        self.lateral = nn.ModuleList(nn.Conv2d(c, dim, kernel_size=1) for c in channels[-4:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stages = self.encoder(x)[-4:]  # strides 4, 8, 16, 32
        out = self.lateral[3](stages[3])
        for level in (2, 1, 0):
            lateral = self.lateral[level](stages[level])
            out = F.interpolate(out, size=lateral.shape[-2:], mode="bilinear", align_corners=False) + lateral
        return out


def frozen_copy(module: nn.Module) -> nn.Module:
    """A copy whose parameters are buffers: no optimiser and no gradient ever reach it."""
    copy = deepcopy(module)
    for sub in copy.modules():
        for name, param in list(sub.named_parameters(recurse=False)):
            delattr(sub, name)
            sub.register_buffer(name, param.detach().clone())
    return copy


@torch.no_grad()
def recalibrate_batch_norm(module: nn.Module, inputs: list[torch.Tensor]) -> None:
    """Set every BatchNorm's running statistics to their mean over ``inputs`` (train-mode forwards, no gradient):
    eval-mode features then match the data, also for a network that has not trained yet."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [bn.momentum for bn in norms]
    was_training = module.training
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average
    module.train()
    try:
        for x in inputs:
            module(x)
    finally:
        for bn, momentum in zip(norms, momenta, strict=True):
            bn.momentum = momentum
        module.train(was_training)


class PicieNet(nn.Module):
    """The trained ``features`` (``forward``), and the clustering state in buffers (see the module docstring)."""

    def __init__(self, features: PicieFeatures, clusters: int, dim: int):
        super().__init__()
        self.features = features
        self.labeler = frozen_copy(features)
        self.register_buffer("centroids", torch.zeros(2, clusters, dim))  # unit vectors, one set per view family
        self.register_buffer("weights", torch.ones(2, clusters))  # cross-entropy weight of each cluster
        self.register_buffer("cluster_map", default_map(clusters))  # class of each view-1 cluster
        self.register_buffer("clustered", torch.zeros((), dtype=torch.uint8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def train(self, mode: bool = True) -> PicieNet:
        """As ``nn.Module.train``, but the labeler always runs in eval mode (its running statistics)."""
        super().train(mode)
        self.labeler.eval()
        return self

    @torch.no_grad()
    def snapshot(self, inputs: list[torch.Tensor]) -> None:
        """Recalibrate the features' BatchNorm statistics on ``inputs``, then make the labeler a copy of them."""
        recalibrate_batch_norm(self.features, inputs)
        self.labeler.load_state_dict(self.features.state_dict())


def default_map(clusters: int) -> torch.Tensor:
    """Cluster 0 (the largest at the first clustering) is background, every other cluster the first foreground."""
    mapping = torch.ones(clusters, dtype=torch.long)
    mapping[0] = 0
    return mapping


def build_picie_net(
    encoder: str = "resnet18", clusters: int = 2, dim: int = 128, weights: str = "imagenet", in_channels: int = 3
) -> tuple[PicieNet, WeightsReport]:
    """The feature network with ``encoder`` and its report of where the initial weights came from."""
    from segmentation_models_pytorch.encoders import get_encoder

    try:
        encoder_module = get_encoder(encoder, in_channels=in_channels, depth=5, weights=None)
    except Exception as exc:
        raise InputError(f"FPN encoder {encoder!r} is not available ({exc}); try resnet18 or resnet34") from exc
    features = PicieFeatures(encoder_module, list(encoder_module.out_channels), dim)
    if is_random_spec(weights):
        report = random_report()
    elif is_imagenet_spec(weights):
        report = _load_imagenet(features, encoder, in_channels)
    else:
        report = _load_file(features, encoder, Path(weights).expanduser(), in_channels)
    return PicieNet(features, clusters, dim), report
