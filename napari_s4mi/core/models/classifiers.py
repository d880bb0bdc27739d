"""Image classification networks: a timm backbone (CNN or ViT) that gives one feature vector per image, and the
heads the classification methods put on it (a projection for CASS, a DINO head, a linear classifier).

Every network keeps its backbone under ``backbone.``, so a self-supervised pretraining's backbone weights load into
a classifier by name (``load_backbone``). Specs are dicts: ``{"arch": "resnet18" | "vit_tiny_patch16_224" | ...,
"weights": "imagenet" | "none" | FILE.safetensors}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from ..errors import InputError
from .weights import WeightsReport, is_imagenet_spec, is_random_spec, load_matching, load_state_file, random_report

BACKBONES = (
    "resnet18",
    "resnet34",
    "resnet50",
    "vit_tiny_patch16_224",
    "vit_small_patch16_224",
    "vit_base_patch16_224",
)


def is_vit(arch: str) -> bool:
    return arch.startswith("vit_")


def is_transformer(arch: str) -> bool:
    """A ViT or a Swin (no channels_last layout for them)."""
    return is_vit(arch) or "swin" in arch


def build_backbone(spec: Mapping, img_size: int) -> tuple[nn.Module, WeightsReport]:
    """The timm backbone of ``spec`` without its classifier (``num_features`` wide), and where its weights came
    from. ViTs accept other input sizes than ``img_size`` (multi-crop)."""
    import timm

    arch = str(spec.get("arch", ""))
    if arch not in BACKBONES:
        raise InputError(f"unknown backbone {arch!r}: use one of {', '.join(BACKBONES)}")
    extra = {"img_size": img_size, "dynamic_img_size": True} if is_vit(arch) else {}
    model = timm.create_model(arch, pretrained=False, num_classes=0, **extra)
    return model, load_initial_weights(model, arch, spec.get("weights", "imagenet"))


def load_initial_weights(
    model: nn.Module, arch: str | None, weights: str | None, label: str | None = None
) -> WeightsReport:
    """ImageNet weights of timm's ``arch`` (fetched on first use, else random with the reason; random when there is
    no such ``arch``), a safetensors file, or random. ``label`` names the network in reports (default ``arch``)."""
    label = label or str(arch)
    if is_random_spec(weights):
        return random_report(f"{label}: random initialisation")
    if is_imagenet_spec(weights):
        if arch is None:
            return random_report(f"{label}: no ImageNet checkpoint of this width; random initialisation")
        from .timm_weights import load_imagenet_into

        return load_imagenet_into(model, arch)
    loaded, total = load_matching(model, load_state_file(weights))
    if loaded == 0:
        raise InputError(f"{Path(str(weights)).name}: no tensor matches the {label} backbone; is it for this model?")
    return WeightsReport("file", f"{arch}: {loaded}/{total} tensors from {weights}", loaded, total)


class ProjectedBackbone(nn.Module):
    """Backbone + linear projection to ``dim`` (CASS: both networks end in the same width), ending in a
    BatchNorm without affine parameters: it keeps the projections of a batch spread out, so the two networks
    cannot agree by mapping every image to one point (measured: without it, a CNN/ViT pair trained by the plain
    CASS loss lost most of its batch spread within a few steps on real slides)."""

    def __init__(self, backbone: nn.Module, dim: int):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Sequential(nn.Linear(backbone.num_features, dim), nn.BatchNorm1d(dim, affine=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


class DinoHead(nn.Module):
    """DINO's head: MLP (with BatchNorm, DINO's ``use_bn_in_head`` option) to a bottleneck, L2 normalisation,
    weight-normalised prototypes; holds the teacher's running centre as a buffer (saved with the network).
    Measured: without the BatchNorm, randomly initialised backbones gave near-identical outputs for every image and
    the pair collapsed to the uniform distribution within 40 steps."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 512, bottleneck: int = 128):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(in_dim, hidden),
            nn.BatchNorm1d(hidden),
            nn.GELU(),
            nn.Linear(hidden, hidden),
            nn.BatchNorm1d(hidden),
            nn.GELU(),
            nn.Linear(hidden, bottleneck),
        )
        self.prototypes = nn.utils.parametrizations.weight_norm(nn.Linear(bottleneck, out_dim, bias=False))
        magnitude = self.prototypes.parametrizations.weight.original0
        magnitude.data.fill_(1.0)
        magnitude.requires_grad_(False)  # normalised prototypes, as DINO's default (norm_last_layer)
        self.register_buffer("center", torch.zeros(1, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prototypes(nn.functional.normalize(self.mlp(x), dim=-1))


class DinoNetwork(nn.Module):
    """Backbone + DINO head."""

    def __init__(self, backbone: nn.Module, out_dim: int):
        super().__init__()
        self.backbone = backbone
        self.head = DinoHead(backbone.num_features, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


class Classifier(nn.Module):
    """Backbone + linear classifier over ``num_classes``."""

    def __init__(self, backbone: nn.Module, num_classes: int):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.num_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def load_backbone(module: nn.Module, path: Path) -> tuple[int, int]:
    """Copy the ``backbone.`` tensors of a saved network into ``module``'s backbone; (loaded, total)."""
    state = {k: v for k, v in load_state_file(path).items() if k.startswith("backbone.")}
    return load_matching(module, state)
