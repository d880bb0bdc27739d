"""PiCIE's data: every training slide's tiles without masks (no mask file of a training slide is opened), the
two views of each image per step, seeded samples for the clustering, and the validation tiles with masks."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from ..data import MIN_ANNOTATED_FOR_VALIDATION, is_colour, load_tiles
from ..errors import ProjectError
from ..inputs import normalise_batch
from ..picie_config import PicieConfig
from ..picie_views import picie_views
from ..project import Project
from ..project.mask_checks import check_training_masks, require_foreground
from .base import HostBatch, TrainingData
from .segmentation import mask_validation_batches, tiling_spec

SAMPLE_BATCH = 16


def plan_slides(project: Project, seed: int) -> tuple[list[str], list[str]]:
    """(training slides, validation slides): every slide outside val and test trains, labels unused; annotated val
    slides validate. Annotated slides without any split get the usual seeded split first (3 or more)."""
    annotated = project.annotated_ids()
    has_split = any(project.record(i).split for i in annotated)
    if annotated and not has_split and len(annotated) >= MIN_ANNOTATED_FOR_VALIDATION:
        project.assign_splits(val_fraction=0.2, seed=seed)
    val = project.annotated_ids(split="val")
    train = [i for i in project.ids if project.record(i).split in (None, "train")]
    if not train:
        raise ProjectError(f"{project.root}: every slide is in val or test; PiCIE needs slides to train on")
    return train, val


class PicieData(TrainingData):
    """Training tiles (images only), their views by step, clustering samples; validation ``image`` + ``mask``."""

    def __init__(self, project: Project, config: PicieConfig):
        self.config = config
        self.classes = list(project.classes)
        require_foreground(project)
        self.train_ids, self.val_ids = plan_slides(project, config.seed)
        self.messages = check_training_masks(project, [], self.val_ids)
        if not self.val_ids:
            self.messages.append(
                "no validation masks: the cluster map defaults to cluster 0 (the largest) = background, the other "
                "clusters = foreground; after training pick the foreground cluster (s4mi clusters RUN --foreground "
                "K, or the Train widget)"
            )
        spec = tiling_spec(config)
        self.train = load_tiles(project, self.train_ids, spec, with_masks=False)
        if len(self.train) == 0:
            raise ProjectError("the training slides gave no tiles: check that they are readable")
        self.val = load_tiles(project, self.val_ids, spec, with_masks=True) if self.val_ids else None
        self.red_norm = config.red_norm == "on" or (config.red_norm == "auto" and is_colour(self.train))
        per_epoch = math.ceil(len(self.train) / config.labeled_batch)
        self.cluster_every = config.cluster_every or per_epoch

    def roles(self) -> dict[str, list[str]]:
        return {"labeled": [], "unlabeled": self.train_ids, "val": self.val_ids}

    def run_info(self) -> dict[str, Any]:
        return {"classes": self.classes, "red_norm_applied": self.red_norm, "cluster_every_steps": self.cluster_every}

    def _views(self, index: np.ndarray, rng: np.random.Generator) -> HostBatch:
        return picie_views(self.train.images[index], rng, self.config.min_crop, self.config.jitter)

    def batch(self, step: int) -> HostBatch:
        rng = np.random.default_rng([self.config.seed, step])
        return self._views(rng.integers(0, len(self.train), self.config.labeled_batch), rng)

    def to_device(self, batch: HostBatch, device: torch.device) -> dict[str, torch.Tensor]:
        return {
            "x1": normalise_batch(batch["x1"], self.red_norm, device),
            "x2": normalise_batch(batch["x2"], self.red_norm, device),
            "box": torch.from_numpy(batch["box"]).to(device),
            "flip": torch.from_numpy(batch["flip"]).to(device).bool(),
        }

    def sample_batches(self, seed: int, device: torch.device) -> Iterator[dict[str, torch.Tensor]]:
        """``cluster_images`` training tiles (without repeats while there are enough), two views each."""
        rng = np.random.default_rng([self.config.seed, 1, seed])
        n = self.config.cluster_images
        index = rng.choice(len(self.train), size=n, replace=len(self.train) < n)
        for start in range(0, n, SAMPLE_BATCH):
            yield self.to_device(self._views(index[start : start + SAMPLE_BATCH], rng), device)

    @property
    def has_validation(self) -> bool:
        return self.val is not None

    def validation_batches(self, device: torch.device) -> Iterator[dict[str, torch.Tensor]]:
        return mask_validation_batches(self.val, self.red_norm, device)

    def steps_per_epoch(self) -> float | None:
        return len(self.train) / self.config.labeled_batch

    def describe_batch(self) -> str:
        return f"batch {self.config.labeled_batch} (two views each), input {self.config.input_size} px"
