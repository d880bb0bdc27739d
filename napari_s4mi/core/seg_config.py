"""Configs of the segmentation methods: the shared segmentation settings, cross-teaching, supervised U-Net."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from .config import Check, TrainConfig


def unet_spec(encoder: str) -> dict[str, Any]:
    """A U-Net with a timm/smp ``encoder`` (ResNet-18/34/50), ImageNet weights where they can be had."""
    return {"arch": "unet", "encoder": encoder, "weights": "imagenet"}


def swin_spec(embed_dim: int, num_heads: tuple[int, ...]) -> dict[str, Any]:
    """A Swin-UNet with four stages of depth 2."""
    return {
        "arch": "swin_unet",
        "embed_dim": embed_dim,
        "depths": [2, 2, 2, 2],
        "num_heads": list(num_heads),
        "weights": "imagenet",
    }


LARGE_SLIDES = ("tile", "whole")  # how prediction treats a slide over the run's tile threshold
WHOLE_LIMIT = 8192  # "whole": slides up to this side are resized whole; larger ones are still tiled


@dataclass
class SegConfig(TrainConfig):
    """Settings every segmentation method shares: tiling, input size, batches, labels, augmentation."""

    task: ClassVar[str] = "segmentation"
    uses_unlabeled: ClassVar[bool] = False  # whether the method draws an unlabeled stream
    uses_labels: ClassVar[bool] = True  # False: trains on no masks (label fraction 0; masks only validate)

    input_size: int = 128
    labeled_batch: int = 4
    unlabeled_batch: int = 4
    label_fraction: float = 1.0
    red_norm: str = "auto"
    augment: bool = True
    max_angle: float = 20.0
    zoom_min: float = 1.0  # scale augmentation: zoom factors drawn from [zoom_min, zoom_max] (1, 1: off)
    zoom_max: float = 1.0
    colour_jitter: float = 0.0  # colour augmentation strength (0: off); see seg_augment.py
    tile_size: int = 480
    tile_threshold: int = 960
    predict_with: str = "auto"
    fused_attention: bool = False  # Swin window attention through scaled_dot_product_attention

    def checks(self) -> list[Check]:
        return super().checks() + [
            (
                self.predict_with in ("auto", *self.outputs),
                f"predict_with '{self.predict_with}': use auto or one of {', '.join(self.outputs)}",
            ),
            (self.input_size > 0 and self.input_size % 32 == 0, "input size must be a positive multiple of 32"),
            (0.0 < self.zoom_min <= self.zoom_max <= 4.0, "zoom range: 0 < zoom min <= zoom max <= 4"),
            (0.0 <= self.colour_jitter < 1.0, "colour jitter must be in [0, 1)"),
            (self.labeled_batch > 0, "the labeled batch must hold at least one image"),
            (self.unlabeled_batch >= 0, "the unlabeled batch cannot be negative"),
            (
                0.0 < self.label_fraction <= 1.0 if self.uses_labels else self.label_fraction == 0.0,
                "label fraction must be in (0, 1]"
                if self.uses_labels
                else f"{self.method} uses no labels: label fraction must be 0",
            ),
            (self.red_norm in ("auto", "on", "off"), "red_norm must be auto, on or off"),
        ]

    def headline(self, metrics: dict[str, float]) -> dict[str, float]:
        """The best output's foreground IoU."""
        ious = [v for k, v in metrics.items() if k.startswith("iou_") and isinstance(v, int | float)]
        return {"IoU": max(ious)} if ious else {}

    @property
    def unlabeled_per_step(self) -> int:
        """Unlabeled images drawn per step (none for a method without an unlabeled stream)."""
        return self.unlabeled_batch if self.uses_unlabeled else 0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SegConfig:
        data = dict(data)
        if "networks" not in data:  # runs before the networks mapping had one field per network
            data["networks"] = {name: data[name] for name in ("cnn", "swin") if isinstance(data.get(name), dict)}
        return super().from_dict(data)


@dataclass
class CrossTeachingConfig(SegConfig):
    """Cross-teaching (Luo et al., MIDL 2022): a CNN U-Net and a Swin-UNet teach each other on unlabeled images."""

    uses_unlabeled: ClassVar[bool] = True

    method: str = "cross-teaching"
    lambda_max: float = 0.1
    rampup_fraction: float = 0.4
    constant_lambda: bool = False
    networks: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {"cnn": unet_spec("resnet18"), "swin": swin_spec(48, (2, 4, 8, 16))}
    )

    @classmethod
    def paper_settings(cls) -> dict[str, Any]:
        return {
            "iterations": 30000,
            "input_size": 224,
            "labeled_batch": 8,
            "unlabeled_batch": 8,
            "constant_lambda": True,
            "val_every": 500,
            "checkpoint_every": 500,
            "networks": {"cnn": unet_spec("resnet34"), "swin": swin_spec(96, (3, 6, 12, 24))},
        }


@dataclass
class SupervisedSegConfig(SegConfig):
    """The transfer baseline (Singh & Cirrone's DEDL): one U-Net on the labeled slides, the whole batch labeled."""

    method: str = "supervised"
    labeled_batch: int = 8
    unlabeled_batch: int = 0
    networks: dict[str, dict[str, Any]] = field(default_factory=lambda: {"cnn": unet_spec("resnet18")})

    @classmethod
    def paper_settings(cls) -> dict[str, Any]:
        return {
            "iterations": 30000,
            "input_size": 224,
            "labeled_batch": 16,
            "val_every": 500,
            "checkpoint_every": 500,
            "networks": {"cnn": unet_spec("resnet34")},
        }
