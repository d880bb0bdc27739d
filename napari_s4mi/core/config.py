"""Training configuration shared by every method: optimiser, schedule, iterations, device, precision, seed,
checkpointing, and the method's networks as a mapping name -> model spec.

Each method has its own config class deriving from :class:`TrainConfig` (see ``seg_config.py``); the registry
(``registry.py``) ties a method name to its config class. No torch here: the CLI and the GUI build and validate
configs without loading the engine.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .errors import TrainingError

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
MEMORY_SAVING = ("auto", "on", "off")
PRESETS = ("cpu-small", "paper")

Check = tuple[bool, str]


@dataclass
class TrainConfig:
    """What every training run needs besides its data. Saved as the run's config.json (``to_dict``)."""

    task: ClassVar[str] = ""
    validates: ClassVar[bool] = True  # whether runs are validated (pretraining without labels is not)

    method: str = ""
    preset: str = "cpu-small"
    iterations: int = 600
    epochs: float = 0.0  # > 0: iterations = epochs x the task's steps per epoch, set when the run starts
    lr: float = 3.6e-4
    weight_decay: float = 1e-5
    cosine: bool = True
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    val_every: int = 100
    checkpoint_every: int = 100
    checkpoint_every_s: float = 60.0  # also save last/ when this long has passed since the last save (0: off)
    fused_optimizer: bool = True  # one fused multi-threaded Adam kernel per network (CPU and CUDA)
    cuda_graphs: bool = True  # CUDA, bf16/fp32: forward + backward replayed from one captured graph per step
    memory_saving: str = "auto"  # CPUs: activation checkpointing; auto = on when the step would crowd the RAM
    networks: dict[str, dict[str, Any]] = field(default_factory=dict)

    def checks(self) -> list[Check]:
        """(condition, message) pairs; subclasses add their own to the shared ones."""
        return [
            (self.device in DEVICES, f"device '{self.device}' unknown: use one of {', '.join(DEVICES)}"),
            (self.precision in PRECISIONS, f"precision '{self.precision}': use one of {', '.join(PRECISIONS)}"),
            (self.memory_saving in MEMORY_SAVING, f"memory_saving must be one of {', '.join(MEMORY_SAVING)}"),
            (self.iterations > 0, "iterations must be at least 1"),
            (self.epochs >= 0, "epochs cannot be negative"),
            (self.lr > 0, "learning rate must be positive"),
            (self.val_every > 0 and self.checkpoint_every > 0, "val_every and checkpoint_every must be positive"),
            (self.checkpoint_every_s >= 0, "checkpoint_every_s cannot be negative"),
            (bool(self.networks), "the method names no network"),
        ]

    def validate(self) -> TrainConfig:
        """Raise TrainingError naming the first bad setting."""
        for ok, message in self.checks():
            if not ok:
                raise TrainingError(f"invalid training setting: {message}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """The config of a saved run; keys this version does not know are ignored."""
        data = dict(data)
        saving = data.get("memory_saving")
        if isinstance(saving, bool):  # runs before the "auto" choice stored a flag
            data["memory_saving"] = "on" if saving else "off"
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: copy.deepcopy(v) for k, v in data.items() if k in known})

    @classmethod
    def for_preset(cls, name: str) -> TrainConfig:
        """The method's settings for a named preset: the defaults (``cpu-small``) or ``paper_settings()``."""
        if name not in PRESETS:
            raise TrainingError(f"preset '{name}' unknown: use one of {', '.join(PRESETS)}")
        return cls(preset=name, **(cls.paper_settings() if name == "paper" else {}))

    @classmethod
    def paper_settings(cls) -> dict[str, Any]:
        """What the ``paper`` preset changes from the defaults (the paper's settings, for a GPU)."""
        return {}

    def override(self, **overrides: Any) -> TrainConfig:
        """Apply settings by name; a network's name replaces its spec. None values are ignored."""
        for key, value in overrides.items():
            if value is None:
                continue
            if key in self.networks:
                self.networks[key] = dict(value)
            elif key in {f.name for f in dataclasses.fields(self)}:
                setattr(self, key, value)
            else:
                raise TrainingError(f"unknown training setting '{key}' for method {self.method}")
        return self

    @property
    def outputs(self) -> tuple[str, ...]:
        """What prediction can use: each network, and the mean of their probabilities when there are two."""
        names = tuple(self.networks)
        return (*names, "mean") if len(names) == 2 else names

    def headline(self, metrics: dict[str, float]) -> dict[str, float]:
        """The validation numbers a live curve shows, by name (none for methods without validation)."""
        return {}

    def set_weights(self, weights: str) -> None:
        """Use ``weights`` ('imagenet', 'none' or a .safetensors file) for every network."""
        for spec in self.networks.values():
            spec["weights"] = weights
