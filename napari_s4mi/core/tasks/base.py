"""What a task gives the engine for one run: seeded batches, validation batches, and what the run records.

A task's ``TrainingData`` reads the project once (``__init__(project, config)``), then serves host-side batches
by step (NumPy arrays, drawn from a generator seeded by the step, so resuming is exact), moves them to the device
as a mapping of tensors for ``Method.train_step``, and yields validation batches for ``Method.evaluate``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

HostBatch = Mapping[str, np.ndarray]


class TrainingData:
    """Base of a task's data for one run. Subclasses set the attributes and implement the methods below."""

    messages: list[str]  # warnings for the user (no validation split, ...)

    def roles(self) -> dict[str, list[str]]:
        """Slide ids by role (labeled, unlabeled, val, ...): saved in the run's config.json with a hash."""
        raise NotImplementedError

    def run_info(self) -> dict[str, Any]:
        """What the run must remember to predict later (classes, normalisation, ...): config.json fields, and
        what ``Method.__init__`` receives as ``run_info``."""
        raise NotImplementedError

    def batch(self, step: int) -> HostBatch:
        """The training batch of ``step`` as host arrays; the same step always gives the same batch."""
        raise NotImplementedError

    def to_device(self, batch: HostBatch, device: torch.device) -> dict[str, torch.Tensor]:
        """A host batch as network-ready tensors on ``device``."""
        raise NotImplementedError

    @property
    def has_validation(self) -> bool:
        return False

    def validation_batches(self, device: torch.device) -> Iterator[dict[str, torch.Tensor]]:
        """Validation batches as tensors on ``device`` (none by default)."""
        return iter(())

    def sample_batches(self, seed: int, device: torch.device) -> Iterator[dict[str, torch.Tensor]]:
        """A sample of the training data as device batches, the same for the same ``seed``, for methods that look
        at the data between steps (``Method.refresh``); none by default."""
        return iter(())

    def steps_per_epoch(self) -> float | None:
        """Steps that show the training data once (for configs that give their length in epochs)."""
        return None

    def describe_batch(self) -> str:
        """The batch in words, for error messages (e.g. 'batch 4+4 at 128 px')."""
        return "the batch"


class PrefetchedBatches:
    """Batches drawn one step ahead on a helper thread while the current step trains (the draw is seeded by step,
    so the batches are the same as drawn in line). On a GPU whose step replays in ~30 ms, drawing a `paper`
    segmentation batch (~50-90 ms of NumPy) in line would dominate the step."""

    def __init__(self, draw: Callable[[int], HostBatch], end_step: int):
        self.draw, self.end_step = draw, end_step
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="s4mi-batches")
        self._pending: tuple[int, Future] | None = None

    def get(self, step: int) -> HostBatch:
        """The batch of ``step``; the one of ``step + 1`` starts being drawn."""
        if self._pending is not None and self._pending[0] == step:
            batch = self._pending[1].result()
        else:
            batch = self.draw(step)
        self._pending = None
        if step + 1 < self.end_step:
            self._pending = (step + 1, self._pool.submit(self.draw, step + 1))
        return batch

    def close(self) -> None:
        """Wait for the batch in flight (if any) and end the helper thread."""
        self._pool.shutdown(wait=True, cancel_futures=True)
