"""One entry point for the segmentation networks: a serialisable spec and a builder."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from torch import nn

from ..errors import InputError
from .weights import WeightsReport

ARCHS = ("unet", "swin_unet")


@dataclass(frozen=True)
class ModelSpec:
    """What network to build: ``arch`` 'unet' (uses ``encoder``) or 'swin_unet' (uses the Swin fields)."""

    arch: str
    encoder: str = "resnet34"
    embed_dim: int = 96
    depths: tuple[int, ...] = (2, 2, 2, 2)
    num_heads: tuple[int, ...] = (3, 6, 12, 24)
    weights: str = "imagenet"

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise InputError(f"unknown model architecture {self.arch!r}; choose one of {', '.join(ARCHS)}")
        object.__setattr__(self, "depths", tuple(int(d) for d in self.depths))
        object.__setattr__(self, "num_heads", tuple(int(h) for h in self.num_heads))


def spec_to_dict(spec: ModelSpec) -> dict[str, Any]:
    """A JSON-serialisable dict (tuples become lists)."""
    out = asdict(spec)
    out["depths"] = list(spec.depths)
    out["num_heads"] = list(spec.num_heads)
    return out


def spec_from_dict(data: dict[str, Any]) -> ModelSpec:
    """Inverse of :func:`spec_to_dict`; unknown keys are ignored, lists become tuples."""
    known = {f.name for f in fields(ModelSpec)}
    kwargs = {k: v for k, v in data.items() if k in known}
    for key in ("depths", "num_heads"):
        if key in kwargs:
            kwargs[key] = tuple(kwargs[key])
    return ModelSpec(**kwargs)


def build_model(
    spec: ModelSpec, num_classes: int, img_size: int, in_channels: int = 3
) -> tuple[nn.Module, WeightsReport]:
    """Build the network of ``spec`` for ``num_classes`` classes at ``img_size`` px and report its weights."""
    if spec.arch == "unet":
        from .unet import build_unet

        return build_unet(spec.encoder, num_classes, spec.weights, in_channels)
    from .swin_unet import build_swin_unet

    return build_swin_unet(
        num_classes=num_classes,
        img_size=img_size,
        embed_dim=spec.embed_dim,
        depths=spec.depths,
        num_heads=spec.num_heads,
        weights=spec.weights,
        in_chans=in_channels,
    )


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements (all, or only those requiring gradients)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
