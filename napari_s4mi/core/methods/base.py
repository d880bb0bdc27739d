"""The extension point of the engine: what a training method is.

A method owns named networks and the optimisers of those it trains, and turns one batch (a mapping of tensors that
its task's data provides) into one update. The engine (``engine.py``) drives every method the same way:

- ``__init__(config, run_info, device, precision, weights=None)``: ``build()`` adds the networks (``add_network``),
  then one Adam per network in ``trainable()`` is made. A network may have no optimiser, e.g. an EMA teacher
  updated in ``after_step``.
- ``train_step(step, batch)``: learning rate of the schedule, zeroed gradients, ``losses`` under the precision's
  autocast (on CUDA replayed from a captured graph), backward, optimiser steps, ``after_step``. Returns the loss
  and its parts as floats; a non-finite loss updates nothing.
- ``evaluate(batches)``: metrics on the validation batches and the name of the primary one (:class:`Evaluation`).
- ``predict(x)``: outputs by name (e.g. each network's probabilities), in fp32, without gradients.
- ``refresh_due(step)`` / ``refresh(step, batches)`` (optional): a method that looks at the training data between
  steps (PiCIE clusters pixel features once per epoch) says before which steps it wants to; the engine then hands
  it ``TrainingData.sample_batches(step, device)``, a sample seeded by the step, before that step trains. What it
  computes from it belongs in its networks' buffers, so checkpoints and resumes keep it.

Subclasses implement ``build`` and ``losses`` and, to be validated and used for prediction, ``evaluate`` and
``predict``. Register them with ``registry.register_method``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..config import TrainConfig
from ..device import autocast, use_channels_last
from ..models import WeightsReport
from .captured import CapturedStep

Batch = Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class Evaluation:
    """Validation metrics; ``metric`` names the one that picks the best checkpoint, reached by ``network``.
    ``details`` (JSON-able, e.g. confusion matrices) go to the run's metrics file beside the numbers."""

    metrics: dict[str, float]
    metric: str
    network: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def score(self) -> float:
        return self.metrics[self.metric]


class Method:
    """Base of every training method (see the module docstring for the contract)."""

    def __init__(
        self,
        config: TrainConfig,
        run_info: Mapping[str, Any],
        device: torch.device,
        precision: str,
        weights: str | None = None,
    ):
        self.config = config
        self.run_info = dict(run_info)
        self.device = device
        self.precision = precision
        self.networks: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.reports: list[WeightsReport] = []
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
        self.channels_last = use_channels_last(device, precision)
        # CUDA in bf16/fp32: forward + backward replayed from a captured graph (fp16's loss scaling stays eager)
        graphs = config.cuda_graphs and device.type == "cuda" and precision != "fp16"
        self._capture: CapturedStep | None = CapturedStep(device) if graphs else None
        self.build(weights)
        self.make_optimizers()

    # ------------------------------------------------------------------------------------------ to implement

    def build(self, weights: str | None) -> None:
        """Add the networks with ``add_network``; ``weights`` overrides the specs' weights (e.g. 'none')."""
        raise NotImplementedError

    def losses(self, batch: Batch, scalars: Mapping[str, float | torch.Tensor]) -> dict[str, torch.Tensor]:
        """Train-mode forward and the loss (key 'loss') with its parts, for one batch."""
        raise NotImplementedError

    def evaluate(self, batches: Iterable[Batch]) -> Evaluation:
        """Metrics over validation batches."""
        raise NotImplementedError

    def predict(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Outputs by name for a batch of inputs (fp32, no gradients)."""
        raise NotImplementedError

    # ----------------------------------------------------------------------------------------- may override

    def trainable(self) -> list[str]:
        """Networks that get an optimiser (all by default)."""
        return list(self.networks)

    def step_scalars(self, step: int) -> dict[str, float]:
        """Per-step numbers the losses use (e.g. a loss weight λ(t)); device tensors in a captured graph."""
        return {}

    def after_step(self, step: int) -> None:
        """Called after the optimiser steps of ``step`` (e.g. an EMA teacher's update)."""

    def refresh_due(self, step: int) -> bool:
        """Whether ``refresh`` should run before ``step`` (never by default)."""
        return False

    def refresh(self, step: int, batches: Iterable[Batch]) -> None:
        """Use a seeded sample of the training data (``TrainingData.sample_batches``) before ``step``."""

    @property
    def default_output(self) -> str:
        """What predicts before any validation chose (the first network)."""
        return next(iter(self.networks))

    # ------------------------------------------------------------------------------------------- machinery

    def add_network(self, name: str, module: nn.Module, report: WeightsReport | None = None) -> nn.Module:
        self.networks[name] = module.to(self.device)
        if report is not None:
            self.reports.append(report)
        return self.networks[name]

    def make_optimizers(self) -> None:
        fused = self.config.fused_optimizer and self.device.type in ("cpu", "cuda")
        self.optimizers = {
            name: torch.optim.Adam(
                self.networks[name].parameters(),
                lr=self.config.lr,
                weight_decay=self.config.weight_decay,
                fused=fused or None,
            )
            for name in self.trainable()
        }

    def learning_rate(self, step: int) -> float:
        """Cosine decay from lr to 0 over the run (constant when cosine is off)."""
        if not self.config.cosine:
            return self.config.lr
        return 0.5 * self.config.lr * (1.0 + math.cos(math.pi * step / self.config.iterations))

    def forward_losses(self, batch: Batch, scalars: Mapping, cache: bool = True) -> dict[str, torch.Tensor]:
        """``losses`` under the method's autocast (``cache=False`` inside a CUDA graph capture)."""
        with autocast(self.device, self.precision, cache=cache):
            return self.losses(batch, scalars)

    def train_step(self, step: int, batch: Batch) -> dict[str, float]:
        """One optimisation step; returns the loss and its parts as floats. A non-finite loss updates nothing."""
        lr = self.learning_rate(step)
        for optimizer in self.optimizers.values():
            for group in optimizer.param_groups:
                group["lr"] = lr
        for name in self.trainable():
            self.networks[name].train()
        scalars = self.step_scalars(step)
        if self._capture is not None and not self._capture.accepts(batch):
            self._drop_capture()  # other batch shapes, or a failed capture: eager from now on
        values = self._capture.run(self, batch, scalars) if self._capture is not None else None
        if values is None:  # eager (or the capture failed: this step runs eagerly)
            for optimizer in self.optimizers.values():
                optimizer.zero_grad(set_to_none=True)
            parts = self.forward_losses(batch, scalars)
            values = {k: float(v.detach()) for k, v in parts.items()}
            if math.isfinite(values["loss"]):
                self.scaler.scale(parts["loss"]).backward()
        if not math.isfinite(values["loss"]):
            return values
        for optimizer in self.optimizers.values():
            self.scaler.step(optimizer)
        self.scaler.update()
        self.after_step(step)
        return values | {"lr": lr}

    def _drop_capture(self) -> None:
        if self._capture is not None:
            self._capture.drop()
        self._capture = None

    @property
    def captured(self) -> bool:
        """Whether the steps now replay a captured CUDA graph."""
        return self._capture is not None and self._capture.graph is not None

    def eval_mode(self) -> None:
        for net in self.networks.values():
            net.eval()

    def close(self) -> None:
        """Drop the networks, optimizers and any captured graph, so their (GPU) memory can go at once."""
        self._drop_capture()
        self.networks.clear()
        self.optimizers.clear()
