"""Segmentation data for a run: slide roles, tiles with masks (labeled) and without (unlabeled), batches."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from ..data import TileSet, TwoStreamSampler, is_colour, load_tiles, plan_data
from ..errors import InputError
from ..inputs import normalise_batch
from ..preprocess import TilingSpec
from ..project import Project
from ..project.mask_checks import check_training_masks, require_foreground
from ..seg_config import LARGE_SLIDES, WHOLE_LIMIT, SegConfig
from .base import HostBatch, TrainingData

VALIDATION_BATCH = 16


def tiling_spec(config: SegConfig, large_slides: str = "tile") -> TilingSpec:
    """How slides become network inputs. ``large_slides`` (prediction): ``tile`` cuts a slide over the threshold
    into tiles, as training did (the paper's recipe); ``whole`` resizes every slide up to WHOLE_LIMIT px whole, as
    training resized its slides under the threshold — the same field of view where large slides frame the same
    scene as the smaller training images (dermoscopy photographs at a higher resolution), not the same pixel scale
    (microscopy at a fixed magnification wants ``tile``)."""
    if large_slides not in LARGE_SLIDES:
        raise InputError(f"large slides '{large_slides}': use one of {', '.join(LARGE_SLIDES)}")
    threshold = max(config.tile_threshold, WHOLE_LIMIT) if large_slides == "whole" else config.tile_threshold
    return TilingSpec(input_size=config.input_size, tile_size=config.tile_size, tile_threshold=threshold)


class SegmentationData(TrainingData):
    """Labeled tiles with masks, unlabeled tiles (their mask files never opened), validation tiles.

    Batches: ``x_l`` labeled images, ``y_l`` their masks, ``x_u`` unlabeled images (none for a method without an
    unlabeled stream). Validation batches: ``image`` and ``mask``."""

    def __init__(self, project: Project, config: SegConfig):
        self.config = config
        self.classes = list(project.classes)
        require_foreground(project)
        self.plan = plan_data(project, config.label_fraction, config.seed)
        self.messages = list(self.plan.messages) + check_training_masks(project, self.plan.labeled, self.plan.val)
        spec = tiling_spec(config)
        self.labeled = load_tiles(project, self.plan.labeled, spec, with_masks=True)
        self.n_unlabeled = config.unlabeled_per_step
        self.unlabeled: TileSet | None = None
        if self.n_unlabeled > 0 and self.plan.unlabeled:
            self.unlabeled = load_tiles(project, self.plan.unlabeled, spec, with_masks=False)
        self.val = load_tiles(project, self.plan.val, spec, with_masks=True) if self.plan.val else None
        self.red_norm = config.red_norm == "on" or (config.red_norm == "auto" and is_colour(self.labeled))
        self.sampler = TwoStreamSampler(
            self.labeled,
            self.unlabeled,
            config.seed,
            config.augment,
            config.max_angle,
            zoom=(config.zoom_min, config.zoom_max),
            jitter=config.colour_jitter,
        )

    def roles(self) -> dict[str, list[str]]:
        return self.plan.roles()

    def run_info(self) -> dict[str, Any]:
        sets = (self.labeled, self.unlabeled)
        largest = max(tiles.largest_side for tiles in sets if tiles is not None)
        return {"classes": self.classes, "red_norm_applied": self.red_norm, "largest_training_side": largest}

    def batch(self, step: int) -> HostBatch:
        images, masks, u_images = self.sampler.batch(step, self.config.labeled_batch, self.n_unlabeled)
        return {"x_l": images, "y_l": masks, "x_u": u_images}

    def to_device(self, batch: HostBatch, device: torch.device) -> dict[str, torch.Tensor]:
        return {
            "x_l": normalise_batch(batch["x_l"], self.red_norm, device),
            "y_l": torch.from_numpy(batch["y_l"]).to(device).long(),
            "x_u": normalise_batch(batch["x_u"], self.red_norm, device),
        }

    @property
    def has_validation(self) -> bool:
        return self.val is not None

    def validation_batches(self, device: torch.device) -> Iterator[dict[str, torch.Tensor]]:
        return mask_validation_batches(self.val, self.red_norm, device)

    def describe_batch(self) -> str:
        return f"batch {self.config.labeled_batch}+{self.n_unlabeled}, input {self.config.input_size} px"


def mask_validation_batches(
    tiles: TileSet | None, red_norm: bool, device: torch.device
) -> Iterator[dict[str, torch.Tensor]]:
    """Validation tiles with their masks in batches of VALIDATION_BATCH (none without validation tiles)."""
    if tiles is None:
        return
    for start in range(0, len(tiles), VALIDATION_BATCH):
        end = start + VALIDATION_BATCH
        yield {
            "image": normalise_batch(tiles.images[start:end], red_norm, device),
            "mask": torch.from_numpy(tiles.masks[start:end]),
        }
