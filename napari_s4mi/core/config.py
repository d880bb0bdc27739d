"""Training configuration: one dataclass for segmentation runs and the named presets.

No torch here: the CLI and the GUI build and validate configs without loading the engine.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .errors import TrainingError

METHODS = ("cross-teaching", "supervised")
PRESETS = ("cpu-small", "paper")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
PREDICT_WITH = ("auto", "cnn", "swin", "mean")


def _unet(encoder: str) -> dict[str, Any]:
    return {"arch": "unet", "encoder": encoder, "weights": "imagenet"}


def _swin(embed_dim: int, num_heads: tuple[int, ...]) -> dict[str, Any]:
    return {
        "arch": "swin_unet",
        "embed_dim": embed_dim,
        "depths": [2, 2, 2, 2],
        "num_heads": list(num_heads),
        "weights": "imagenet",
    }


@dataclass
class SegConfig:
    """Everything a segmentation run needs besides its data. Saved as the run's config.json."""

    method: str = "cross-teaching"
    preset: str = "cpu-small"
    iterations: int = 600
    input_size: int = 128
    labeled_batch: int = 4
    unlabeled_batch: int = 4
    lr: float = 3.6e-4
    weight_decay: float = 1e-5
    cosine: bool = True
    lambda_max: float = 0.1
    rampup_fraction: float = 0.4
    constant_lambda: bool = False
    label_fraction: float = 1.0
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    red_norm: str = "auto"
    augment: bool = True
    max_angle: float = 20.0
    tile_size: int = 480
    tile_threshold: int = 960
    val_every: int = 100
    checkpoint_every: int = 100
    predict_with: str = "auto"
    # Speed and memory (the same maths; measured on a 2-core AVX2 CPU, see the README's Benchmark section).
    fused_optimizer: bool = True  # one fused multi-threaded Adam kernel per network (CPU and CUDA)
    fused_attention: bool = False  # Swin window attention through scaled_dot_product_attention
    memory_saving: bool = False  # CPUs only: activation checkpointing, heap returned promptly (paper: on)
    cuda_graphs: bool = True  # CUDA, bf16/fp32: forward + backward replayed from one captured graph per step
    cnn: dict[str, Any] = field(default_factory=lambda: _unet("resnet18"))
    swin: dict[str, Any] = field(default_factory=lambda: _swin(48, (2, 4, 8, 16)))

    def validate(self) -> SegConfig:
        """Raise TrainingError naming the first bad setting."""
        checks = [
            (self.method in METHODS, f"method '{self.method}' unknown: use one of {', '.join(METHODS)}"),
            (self.device in DEVICES, f"device '{self.device}' unknown: use one of {', '.join(DEVICES)}"),
            (
                self.precision in PRECISIONS,
                f"precision '{self.precision}': use one of {', '.join(PRECISIONS)}",
            ),
            (self.predict_with in PREDICT_WITH, f"predict_with '{self.predict_with}': use {PREDICT_WITH}"),
            (
                self.input_size > 0 and self.input_size % 32 == 0,
                "input size must be a positive multiple of 32",
            ),
            (self.iterations > 0, "iterations must be at least 1"),
            (self.labeled_batch > 0, "the labeled batch must hold at least one image"),
            (self.unlabeled_batch >= 0, "the unlabeled batch cannot be negative"),
            (0.0 < self.label_fraction <= 1.0, "label fraction must be in (0, 1]"),
            (self.lr > 0, "learning rate must be positive"),
            (self.red_norm in ("auto", "on", "off"), "red_norm must be auto, on or off"),
        ]
        for ok, message in checks:
            if not ok:
                raise TrainingError(f"invalid training setting: {message}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SegConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def preset(name: str, method: str = "cross-teaching", **overrides: Any) -> SegConfig:
    """Build a config from a named preset, then apply overrides (None values are ignored)."""
    if name not in PRESETS:
        raise TrainingError(f"preset '{name}' unknown: use one of {', '.join(PRESETS)}")
    if name == "paper":
        config = SegConfig(
            method=method,
            preset=name,
            iterations=30000,
            input_size=224,
            labeled_batch=8,
            unlabeled_batch=8,
            constant_lambda=True,
            val_every=500,
            checkpoint_every=500,
            cnn=_unet("resnet34"),
            swin=_swin(96, (3, 6, 12, 24)),
            memory_saving=True,
        )
    else:
        config = SegConfig(method=method, preset=name)
    if method == "supervised":
        # The transfer baseline: U-Net / ResNet-34 on the labeled images only, the whole batch labeled.
        config.cnn = _unet("resnet34") if name == "paper" else config.cnn
        config.labeled_batch += config.unlabeled_batch
        config.unlabeled_batch = 0
    for key, value in overrides.items():
        if value is None:
            continue
        if not hasattr(config, key):
            raise TrainingError(f"unknown training setting '{key}'")
        setattr(config, key, value)
    return config.validate()
