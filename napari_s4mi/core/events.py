"""Typed events yielded by the training loop; the CLI prints them, the GUI forwards them to napari."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
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
    """Validation metrics at a step (foreground IoU per network and for their mean)."""

    step: int
    metrics: dict[str, float]
    best: bool


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
    best: dict[str, float] = field(default_factory=dict)


Event = Progress | Validation | Checkpoint | Message | Done


class CancelToken:
    """A thread-safe stop flag, checked by the loop once per step."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()
