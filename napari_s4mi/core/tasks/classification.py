"""Classification data for a run: slides tiled to network-size tiles, each tile carrying its slide's label.

Fine-tuning (``ClassificationData``): labeled training tiles, augmented (crop, turns, flips, mild colour jitter);
batches ``image`` and ``target`` (class index, or a 0/1 vector in multi-label mode); validation batches add
``slide`` (the tile's slide, so that metrics are per slide: the mean of its tiles' probabilities).
Pretraining (``PretrainingData``): the training-split tiles without labels, as the method's views.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from ..cls_config import CassConfig, DinoConfig, FinetuneConfig, ImageConfig
from ..data import TileSet, is_colour, load_tiles
from ..errors import ProjectError
from ..inputs import normalise_batch
from ..preprocess import TilingSpec
from ..project import Project
from ..views import ViewSpec, make_view, make_views
from .base import HostBatch, TrainingData
from .cls_plan import ClsPlan, plan_classification

VALIDATION_BATCH = 32


def tiling_spec(config: ImageConfig) -> TilingSpec:
    return TilingSpec(input_size=config.input_size, tile_size=config.tile_size, tile_threshold=config.tile_threshold)


def label_targets(project: Project, ids: list[str]) -> tuple[list[str], bool, np.ndarray]:
    """(class names, multi-label, targets per slide): class indices, or 0/1 rows in multi-label mode."""
    classes = list(project.label_classes)
    multi = project.label_mode == "multi"
    if multi:
        targets = np.array([project.label_vector(i) for i in ids], np.float32).reshape(len(ids), len(classes))
    else:
        targets = np.array([project.label_index(i) for i in ids], np.int64)
    return classes, multi, targets


class _TiledSlides(TrainingData):
    """What both classification datas share: the plan, tiles and red normalisation."""

    def __init__(self, project: Project, config: ImageConfig, label_fraction: float):
        self.config = config
        self.plan: ClsPlan = plan_classification(project, label_fraction, config.seed, config.val_fraction)
        self.messages = list(self.plan.messages)
        self.spec = tiling_spec(config)

    def _red_norm(self, tiles: TileSet) -> bool:
        return self.config.red_norm == "on" or (self.config.red_norm == "auto" and is_colour(tiles))

    def roles(self) -> dict[str, list[str]]:
        return self.plan.roles()


class ClassificationData(_TiledSlides):
    """Labeled tiles for fine-tuning and validation tiles with their slides."""

    def __init__(self, project: Project, config: FinetuneConfig):
        super().__init__(project, config, config.label_fraction)
        if not self.plan.labeled:
            raise ProjectError(f"{project.root}: no labeled training slide; label more slides or re-split")
        self.classes, self.multi_label, targets = label_targets(project, self.plan.labeled)
        self.train = load_tiles(project, self.plan.labeled, self.spec, with_masks=False)
        index = {slide_id: k for k, slide_id in enumerate(self.plan.labeled)}
        self.targets = targets[[index[s] for s in self.train.slide_ids]]
        self.red_norm = self._red_norm(self.train)
        self.val = load_tiles(project, self.plan.val, self.spec, with_masks=False) if self.plan.val else None
        if self.val is not None:
            _, _, val_targets = label_targets(project, self.plan.val)
            order = {slide_id: k for k, slide_id in enumerate(self.plan.val)}
            self.val_slide = np.array([order[s] for s in self.val.slide_ids], np.int64)
            self.val_targets = val_targets[self.val_slide]
        self.view = ViewSpec(1, config.input_size, (0.6, 1.0), jitter=0.2, gray=0.0)

    def class_counts(self) -> list[float]:
        """Labeled training tiles per class (the only labels that class weights may see)."""
        if self.multi_label:
            return [float(v) for v in self.targets.sum(axis=0)]
        return [float(v) for v in np.bincount(self.targets, minlength=len(self.classes))]

    def run_info(self) -> dict[str, Any]:
        return {
            "classes": self.classes,
            "multi_label": self.multi_label,
            "class_counts": self.class_counts(),
            "train_tiles": len(self.train),
            "red_norm_applied": self.red_norm,
        }

    def steps_per_epoch(self) -> float:
        return len(self.train) / self.config.batch

    def batch(self, step: int) -> HostBatch:
        rng = np.random.default_rng([self.config.seed, step])
        index = rng.integers(0, len(self.train), size=self.config.batch)
        images = np.stack([make_view(self.train.images[i], self.view, rng) for i in index])
        return {"image": images, "target": self.targets[index]}

    def to_device(self, batch: HostBatch, device: torch.device) -> dict[str, torch.Tensor]:
        return {
            "image": normalise_batch(batch["image"], self.red_norm, device),
            "target": torch.from_numpy(batch["target"]).to(device),
        }

    @property
    def has_validation(self) -> bool:
        return self.val is not None

    def validation_batches(self, device: torch.device) -> Iterator[dict[str, torch.Tensor]]:
        if self.val is None:
            return
        for start in range(0, len(self.val), VALIDATION_BATCH):
            end = start + VALIDATION_BATCH
            yield {
                "image": normalise_batch(self.val.images[start:end], self.red_norm, device),
                "target": torch.from_numpy(self.val_targets[start:end]),
                "slide": torch.from_numpy(self.val_slide[start:end]),
            }

    def describe_batch(self) -> str:
        return f"batch {self.config.batch}, input {self.config.input_size} px"


class PretrainingData(_TiledSlides):
    """Every training-split tile, no labels: batches of the method's augmented views (``config.view_specs()``)."""

    def __init__(self, project: Project, config: CassConfig | DinoConfig):
        super().__init__(project, config, label_fraction=0.0)
        self.messages = []  # pretraining has no validation: nothing to warn about
        pool = self.plan.pretraining_pool
        if not pool:
            raise ProjectError(f"{project.root}: no training-split slide to pretrain on")
        self.tiles = load_tiles(project, pool, self.spec, with_masks=False)
        self.red_norm = self._red_norm(self.tiles)
        self.views = config.view_specs()

    def roles(self) -> dict[str, list[str]]:
        return {"pretraining": self.plan.pretraining_pool, "held_out": sorted(self.plan.val + self.plan.test)}

    def run_info(self) -> dict[str, Any]:
        return {"red_norm_applied": self.red_norm, "images": len(self.tiles)}

    def steps_per_epoch(self) -> float:
        return len(self.tiles) / self.config.batch

    def batch(self, step: int) -> HostBatch:
        rng = np.random.default_rng([self.config.seed, step])
        images = self.tiles.images[rng.integers(0, len(self.tiles), size=self.config.batch)]
        return {key: make_views(images, spec, rng) for key, spec in self.views.items()}

    def to_device(self, batch: HostBatch, device: torch.device) -> dict[str, torch.Tensor]:
        return {key: normalise_batch(value, self.red_norm, device) for key, value in batch.items()}

    def describe_batch(self) -> str:
        views = ", ".join(f"{s.count} x {s.size} px" for s in self.views.values())
        return f"batch {self.config.batch} ({views})"
