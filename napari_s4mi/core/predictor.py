"""Prediction with a trained run of any task: the run's checkpoint, device and method, then the task's predictor.

``open_predictor(run_dir)`` reads the run's config.json, finds its task in the registry and returns that task's
predictor (segmentation: ``tasks.seg_predictor.SegPredictor``), its networks loaded from ``best/`` (or ``last/``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import checkpoint as ckpt
from .config import TrainConfig
from .device import resolve_device, resolve_precision
from .engine import BEST, LAST
from .methods import build_method
from .methods.base import Method
from .registry import config_from_dict, task_entry
from .runs import read_run_config


@dataclass
class TrainedRun:
    """A run folder read for prediction: its record, config, chosen checkpoint and target device."""

    path: Path
    record: dict[str, Any]
    config: TrainConfig
    folder: Path
    state: dict[str, Any]
    device: torch.device
    precision: str

    @property
    def step(self) -> int:
        return int(self.state.get("step", 0))

    def build_method(self, config: TrainConfig | None = None) -> Method:
        """The run's method with the checkpoint's weights (``config`` may adjust inference-only settings)."""
        method = build_method(config or self.config, self.record, self.device, self.precision, weights="none")
        ckpt.load_networks(self.folder, method.networks)
        return method


def read_trained_run(run_dir: Path, device: str = "auto", precision: str = "fp32", checkpoint: str = "auto"):
    """The run in ``run_dir`` and its ``checkpoint`` (auto: best when validated, else last)."""
    run_dir = Path(run_dir)
    record = read_run_config(run_dir)
    config = config_from_dict(record["config"])
    folder = run_dir / (checkpoint if checkpoint != "auto" else BEST if (run_dir / BEST).exists() else LAST)
    state = ckpt.read_state(folder)
    target = resolve_device(device)
    return TrainedRun(run_dir, record, config, folder, state, target, resolve_precision(precision, target))


def open_predictor(
    run_dir: Path, which: str = "auto", device: str = "auto", precision: str = "fp32", checkpoint: str = "auto"
):
    """The predictor of a trained run's task, ready to predict with output ``which`` (auto: the run's best)."""
    run = read_trained_run(run_dir, device, precision, checkpoint)
    return task_entry(run.config.task).predictor_class()(run, which=which)
