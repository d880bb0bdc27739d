"""Configs of the classification methods: self-supervised pretraining (CASS, DINO) and supervised fine-tuning.

Pretraining runs have the task ``pretraining`` (images only); fine-tuning runs the task ``classification`` (images
and class labels), initialised from ImageNet, random weights, or a pretraining run (``init``). A preset may give
the length in epochs (``epochs``): the engine then sets ``iterations`` from the size of the training data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from .config import Check, TrainConfig
from .views import ViewSpec

SMALL = {"cnn": "resnet18", "vit": "vit_tiny_patch16_224"}
PAPER = {"cnn": "resnet50", "vit": "vit_base_patch16_224"}


def backbones(archs: dict[str, str], weights: str = "imagenet") -> dict[str, dict[str, Any]]:
    return {name: {"arch": arch, "weights": weights} for name, arch in archs.items()}


@dataclass
class ImageConfig(TrainConfig):
    """Settings shared by the classification methods: input size, batch, tiling of large slides, augmentation."""

    input_size: int = 128
    batch: int = 16
    red_norm: str = "auto"
    tile_size: int = 480
    tile_threshold: int = 960
    val_fraction: float = 0.2  # of the labeled slides without a split, held out for validation (seeded)

    def checks(self) -> list[Check]:
        return super().checks() + [
            (self.input_size > 0 and self.input_size % 32 == 0, "input size must be a positive multiple of 32"),
            (self.batch > 1, "the batch must hold at least two images"),
            (self.red_norm in ("auto", "on", "off"), "red_norm must be auto, on or off"),
            (0.0 <= self.val_fraction < 1.0, "val_fraction must be in [0, 1)"),
        ]


@dataclass
class CassConfig(ImageConfig):
    """CASS (Singh et al.): a CNN and a ViT fed the same augmented image, trained so that their L2-normalised
    projections agree (loss 2 - 2 cos); no labels."""

    task: ClassVar[str] = "pretraining"
    validates: ClassVar[bool] = False

    method: str = "cass"
    projection_dim: int = 512
    lr: float = 1e-3
    iterations: int = 1500
    val_every: int = 500
    checkpoint_every: int = 250
    cross_view: bool = False  # True: each network its own augmented view of the image (False: CASS as published)
    networks: dict[str, dict[str, Any]] = field(default_factory=lambda: backbones(SMALL))

    def view_specs(self) -> dict[str, ViewSpec]:
        """One augmented view per image fed to both networks, or two (the first to the CNN, the second to the
        transformer) with ``cross_view``."""
        return {"view": ViewSpec(2 if self.cross_view else 1, self.input_size, (0.3, 1.0))}

    @classmethod
    def paper_settings(cls) -> dict[str, Any]:
        return {"input_size": 224, "batch": 16, "epochs": 100, "networks": backbones(PAPER)}


@dataclass
class DinoConfig(ImageConfig):
    """DINO (Caron et al. 2021): a student and its EMA teacher (no optimiser) over multi-crop views, the teacher's
    outputs centred and sharpened. One backbone (the ViT by default); the teacher's is kept for fine-tuning."""

    task: ClassVar[str] = "pretraining"
    validates: ClassVar[bool] = False

    method: str = "dino"
    out_dim: int = 1024
    local_crops: int = 4
    student_temp: float = 0.1
    teacher_temp: float = 0.04
    center_momentum: float = 0.9
    teacher_momentum: float = 0.996  # raised to 1 over the run (cosine)
    lr: float = 5e-4
    iterations: int = 1500
    val_every: int = 500
    checkpoint_every: int = 250
    networks: dict[str, dict[str, Any]] = field(default_factory=lambda: backbones({"vit": SMALL["vit"]}))

    def checks(self) -> list[Check]:
        return super().checks() + [(len(self.networks) == 1, "DINO pretrains one backbone")]

    def view_specs(self) -> dict[str, ViewSpec]:
        """Multi-crop: two global views at the input size, ``local_crops`` small ones (3/7 of it, patch multiple)."""
        local = max(32, (self.input_size * 3 // 7) // 16 * 16)
        return {
            "global": ViewSpec(2, self.input_size, (0.4, 1.0)),
            "local": ViewSpec(self.local_crops, local, (0.05, 0.4)),
        }

    @classmethod
    def paper_settings(cls) -> dict[str, Any]:
        return {
            "input_size": 224,
            "batch": 16,
            "epochs": 100,
            "out_dim": 65536,
            "networks": backbones({"vit": PAPER["vit"]}),
        }


@dataclass
class FinetuneConfig(ImageConfig):
    """Supervised training of classifiers on a fraction of the labeled slides: each network gets a linear head;
    cross-entropy (single-label) or a sigmoid loss (multi-label), class weights from the training labels only."""

    task: ClassVar[str] = "classification"

    method: str = "supervised"
    init: str = "imagenet"  # imagenet | random | a pretraining run folder
    label_fraction: float = 1.0
    multilabel_loss: str = "bce"  # bce | focal
    focal_gamma: float = 2.0
    class_weighting: bool = True
    threshold: float = 0.5
    iterations: int = 600
    val_every: int = 100
    checkpoint_every: int = 100
    networks: dict[str, dict[str, Any]] = field(default_factory=lambda: backbones(SMALL))

    def headline(self, metrics: dict[str, float]) -> dict[str, float]:
        """Macro F1 and macro recall of the output with the best macro F1."""
        f1 = {k.removeprefix("macro_f1_"): v for k, v in metrics.items() if k.startswith("macro_f1_")}
        f1 = {k: v for k, v in f1.items() if isinstance(v, int | float) and v == v}  # NaN: no validation slide
        if not f1:
            return {}
        best = max(f1, key=f1.__getitem__)
        return {"macro F1": f1[best], "macro recall": metrics.get(f"macro_recall_{best}", float("nan"))}

    def checks(self) -> list[Check]:
        return super().checks() + [
            (0.0 < self.label_fraction <= 1.0, "label fraction must be in (0, 1]"),
            (self.multilabel_loss in ("bce", "focal"), "multilabel_loss must be bce or focal"),
        ]

    @classmethod
    def paper_settings(cls) -> dict[str, Any]:
        return {"input_size": 224, "batch": 16, "epochs": 50, "lr": 3e-4, "networks": backbones(PAPER)}
