"""A training step's forward and backward replayed from one captured CUDA graph.

On a fast GPU a training step is bound by the host launching thousands of small kernels (an H200 idled
through a 60 ms `paper` step in eager PyTorch, bf16 no faster than fp32). Capturing forward, losses and backward
once and replaying them launches the whole step at once. The optimizer steps stay eager (fused Adam is a few
kernels), so learning-rate schedules, the skipped update on a non-finite loss and checkpoints work as before.

Rules the capture relies on: fixed batch shapes (the method drops the graph for good when they change), no
host synchronisation inside the step, per-step numbers (λ(t)) passed as device tensors, gradients allocated by the
captured backward and never set to None afterwards (the replay overwrites them), and warm-up steps on a side
stream before the capture, as PyTorch's CUDA-graph notes require.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from .base import Batch, Method

log = logging.getLogger(__name__)

WARMUP_STEPS = 3
_SIDE_STREAMS: dict[torch.device, torch.cuda.Stream] = {}


def side_stream(device: torch.device) -> torch.cuda.Stream:
    """One warm-up and capture stream per device for the whole process: cuBLAS keeps a workspace per stream it
    meets (32 MiB each on an H200), so a new stream per run would leave more memory behind after every run."""
    if device not in _SIDE_STREAMS:
        _SIDE_STREAMS[device] = torch.cuda.Stream(device=device)
    return _SIDE_STREAMS[device]


class CapturedStep:
    """Runs a method's forward + backward: eager warm-up steps on a side stream, then one captured graph."""

    def __init__(self, device: torch.device):
        self.device = device
        self.warmed = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.inputs: dict[str, torch.Tensor] = {}
        self.scalars: dict[str, torch.Tensor] = {}
        self.keys: list[str] = []
        self.values: torch.Tensor | None = None  # the step's loss parts, stacked, written by each replay
        self.failed: str | None = None
        self.stream = side_stream(self.device)

    def accepts(self, batch: Batch) -> bool:
        """Whether this batch (any tensors, by name) fits the captured graph (before the capture, any batch does)."""
        if self.graph is None:
            return self.failed is None
        return batch.keys() == self.inputs.keys() and all(
            batch[k].shape == v.shape and batch[k].dtype == v.dtype for k, v in self.inputs.items()
        )

    def drop(self) -> None:
        """Free the graph and its memory pool (the method then steps eagerly)."""
        self.graph, self.inputs, self.scalars, self.values = None, {}, {}, None

    def run(self, method: Method, batch: Batch, scalars: dict[str, float]) -> dict[str, float] | None:
        """Forward and backward of one step; the gradients are set when it returns. Returns the loss parts, or
        None when the capture failed (``failed`` says why; nothing ran, the caller steps eagerly)."""
        if self.graph is None and self.warmed < WARMUP_STEPS:
            return self._warm_up(method, batch, scalars)
        if self.graph is None:
            try:
                self._capture(method, batch, scalars)
            except Exception as exc:  # e.g. an operation that synchronises with the host: stay eager
                self.failed = f"{type(exc).__name__}: {exc}"
                log.warning("S4MI: CUDA graph capture failed, training eagerly (%s)", self.failed)
                self.drop()
                torch.cuda.synchronize(self.device)
                return None
        for name, static in self.inputs.items():
            static.copy_(batch[name], non_blocking=True)
        for name, value in scalars.items():
            self.scalars[name].fill_(value)
        self.graph.replay()
        return dict(zip(self.keys, self.values.tolist(), strict=True))

    def _warm_up(self, method: Method, batch: Batch, scalars: dict[str, float]) -> dict[str, float]:
        """An ordinary eager step on the side stream (it trains too)."""
        self.stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(self.stream):
            for optimizer in method.optimizers.values():
                optimizer.zero_grad(set_to_none=True)
            parts = method.forward_losses(batch, scalars)
            values = {k: float(v.detach()) for k, v in parts.items()}
            if torch.isfinite(parts["loss"]):
                parts["loss"].backward()
        torch.cuda.current_stream(self.device).wait_stream(self.stream)
        self.warmed += 1
        return values

    def _capture(self, method: Method, batch: Batch, scalars: dict[str, float]) -> None:
        self.inputs = {name: t.clone() for name, t in batch.items()}
        self.scalars = {k: torch.tensor(float(v), device=self.device) for k, v in scalars.items()}
        for optimizer in method.optimizers.values():
            optimizer.zero_grad(set_to_none=True)  # the captured backward allocates the gradients it rewrites
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=self.stream):
            parts = method.forward_losses(self.inputs, self.scalars, cache=False)
            parts["loss"].backward()
            self.keys = list(parts)
            self.values = torch.stack([v.detach().float().reshape(()) for v in parts.values()])
        self.graph = graph
        log.info("S4MI: training step captured as a CUDA graph (%d inputs)", len(self.inputs))
