"""Typed events yielded by the training loop; the CLI prints them, the GUI forwards them to napari."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Progress:
    """One finished training step."""

    step: int
    total: int
    loss: float
    parts: dict[str, float] = field(default_factory=dict)
    lr: float = 0.0
    eta_s: float = 0.0


@dataclass(frozen=True)
class Validation:
    """Validation metrics at a step; ``metric`` is the one that picks the best checkpoint, reached by ``network``
    (the output prediction will use), and ``best`` says whether this step is the best so far."""

    step: int
    metrics: dict[str, float]
    metric: str = ""
    score: float = float("nan")
    network: str = ""
    best: bool = False


@dataclass(frozen=True)
class BestCheckpoint:
    """The best validation so far: its step, the primary metric, its value and the network that reached it."""

    step: int
    metric: str
    score: float
    network: str
    metrics: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict | None) -> BestCheckpoint | None:
        """Read a checkpoint's ``best`` entry (older runs: score, predict_with and metrics side by side)."""
        if not data or data.get("score", -1.0) < 0:
            return None
        if "metric" in data:
            return cls(
                int(data["step"]), data["metric"], float(data["score"]), data["network"], data.get("metrics", {})
            )
        metrics = {k: v for k, v in data.items() if k not in ("score", "predict_with", "step")}
        network = str(data.get("predict_with", ""))
        return cls(int(data.get("step", 0)), f"iou_{network}", float(data["score"]), network, metrics)


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint written: kind is 'last' or 'best'."""

    path: Path
    step: int
    kind: str


@dataclass(frozen=True)
class Message:
    """Something the user should read (weights used, validation skipped, ...)."""

    text: str
    level: str = "info"


@dataclass(frozen=True)
class Done:
    """The run ended: finished, or cancelled with a valid last checkpoint."""

    run_dir: Path
    step: int
    cancelled: bool
    best: BestCheckpoint | None = None


@dataclass(frozen=True)
class Stage:
    """A stage of a pipeline begins (``pretraining``, ``fine-tuning``): the events that follow are its run's."""

    name: str
    run_dir: Path
    index: int
    count: int


Event = Progress | Validation | Checkpoint | Message | Done | Stage


class CancelToken:
    """A thread-safe stop flag, checked by the loop once per step."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()
