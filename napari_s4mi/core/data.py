"""Segmentation training data: which slides play which role, their tiles at network size, the two-stream sampler.

Labeled slides give (image, mask) tiles; unlabeled slides give image tiles only: their mask files are never
opened, so hidden labels cannot leak into the unlabeled stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .batch import SlideBatch
from .errors import InputError, ProjectError
from .preprocess import Tile, TilingSpec, augment, network_tile, resize_mask, tile_grid
from .project import Project
from .seg_augment import colour_jitter, random_zoom

MIN_ANNOTATED_FOR_VALIDATION = 3


@dataclass
class DataPlan:
    """Slide ids by role. `hidden` are annotated training slides whose masks this run does not use."""

    labeled: list[str]
    unlabeled: list[str]
    val: list[str]
    hidden: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)

    def roles(self) -> dict[str, list[str]]:
        return {"labeled": self.labeled, "unlabeled": self.unlabeled, "val": self.val}


def plan_data(project: Project, label_fraction: float, seed: int) -> DataPlan:
    """Choose labeled, unlabeled and validation slides; assigns a seeded split when none exists."""
    annotated = project.annotated_ids()
    if not annotated:
        raise ProjectError(
            f"{project.root}: no annotated slides; paint masks and mark them annotated, or import masks (--masks DIR)"
        )
    messages: list[str] = []
    has_split = any(project.record(i).split for i in annotated)
    if not has_split and len(annotated) >= MIN_ANNOTATED_FOR_VALIDATION:
        project.assign_splits(val_fraction=0.2, seed=seed)
    val = project.annotated_ids(split="val")
    if not val:
        messages.append(
            f"only {len(annotated)} annotated slide(s) and none in the val split: no validation "
            f"(needs {MIN_ANNOTATED_FOR_VALIDATION}); the last checkpoint is used for prediction"
        )
    train = [i for i in annotated if project.record(i).split in (None, "train")]
    if not train:
        raise ProjectError(f"{project.root}: every annotated slide is in val or test; annotate more or re-split")
    rng = np.random.default_rng(seed)
    n_labeled = max(1, int(round(label_fraction * len(train))))
    order = rng.permutation(len(train))
    labeled = sorted(train[i] for i in order[:n_labeled])
    hidden = sorted(train[i] for i in order[n_labeled:])
    unannotated = [i for i in project.unannotated_ids() if project.record(i).split in (None, "train")]
    return DataPlan(labeled, hidden + unannotated, val, hidden, messages)


@dataclass
class TileSet:
    """Slides cut into tiles and resized to the network input: uint8 images, optional label masks."""

    images: np.ndarray
    masks: np.ndarray | None
    slide_ids: list[str]
    largest_side: int = 0  # the longest side of the slides they came from, in px

    def __len__(self) -> int:
        return len(self.images)


def _crop_padded(array: np.ndarray, tile: Tile) -> np.ndarray:
    """The tile's region of a 2D array, zero-padded where it leaves the array."""
    out = np.zeros((tile.h, tile.w), dtype=array.dtype)
    y0, x0 = max(tile.y, 0), max(tile.x, 0)
    y1, x1 = min(tile.y + tile.h, array.shape[0]), min(tile.x + tile.w, array.shape[1])
    if y1 > y0 and x1 > x0:
        out[y0 - tile.y : y1 - tile.y, x0 - tile.x : x1 - tile.x] = array[y0:y1, x0:x1]
    return out


def load_tiles(project: Project, ids: list[str], spec: TilingSpec, with_masks: bool) -> TileSet:
    """Read slides (and, only when asked, their masks) and cut them into network-size tiles. Every slide is tried:
    one InputError names all that cannot be read, so they are fixed in one go."""
    size = spec.input_size
    images: list[np.ndarray] = []
    masks: list[np.ndarray] = []
    owners: list[str] = []
    sides: list[int] = [0]
    batch = SlideBatch(len(ids), report=lambda line: None)

    def read(slide_id: str) -> None:  # a slide failing half-way leaves some tiles: the batch fails as a whole
        with project.open_slide(slide_id) as slide:
            sides.append(max(slide.shape[:2]))
            mask = project.read_mask(slide_id) if with_masks else None
            for tile in tile_grid(slide.shape[0], slide.shape[1], spec):
                region = slide.read_region(tile.y, tile.x, tile.h, tile.w)
                images.append(network_tile(region, size))
                if mask is not None:
                    masks.append(resize_mask(_crop_padded(mask, tile), size).astype(np.uint8))
                owners.append(slide_id)

    for slide_id in ids:
        batch.attempt(Path(slide_id), lambda slide_id=slide_id: read(slide_id))
    if batch.result.skipped:
        reasons = "; ".join(reason for _, reason in batch.result.skipped[:3])
        more = f" (and {len(batch.result.skipped) - 3} more)" if len(batch.result.skipped) > 3 else ""
        raise InputError(f"{len(batch.result.skipped)} slide(s) cannot be read: {reasons}{more}")
    shape = (0, size, size, 3)
    image_array = np.stack(images) if images else np.zeros(shape, np.uint8)
    mask_array = (np.stack(masks) if masks else np.zeros(shape[:3], np.uint8)) if with_masks else None
    return TileSet(image_array, mask_array, owners, max(sides))


def is_colour(tiles: TileSet, sample: int = 16) -> bool:
    """True when the tiles carry colour (channels differ), i.e. red normalisation makes sense."""
    head = tiles.images[:sample].astype(np.int16)
    return bool(np.abs(head[..., 0] - head[..., 1]).mean() + np.abs(head[..., 0] - head[..., 2]).mean() > 1.0)


class TwoStreamSampler:
    """Draws the labeled and unlabeled parts of each batch, seeded by (seed, step) so resuming is exact.

    The labeled stream samples with replacement, so one annotated slide is enough. With no unlabeled slides
    (100% labels) the unlabeled stream draws labeled images with their masks hidden.
    """

    def __init__(
        self,
        labeled: TileSet,
        unlabeled: TileSet | None,
        seed: int,
        do_augment: bool,
        max_angle: float,
        zoom: tuple[float, float] = (1.0, 1.0),
        jitter: float = 0.0,
    ):
        if len(labeled) == 0:
            raise ProjectError("the labeled slides gave no tiles: check that the annotated slides are readable")
        self.labeled = labeled
        self.unlabeled = unlabeled if unlabeled is not None and len(unlabeled) else None
        self.seed = seed
        self.do_augment = do_augment
        self.max_angle = max_angle
        self.zoom, self.jitter = zoom, jitter

    def _augment(self, images: np.ndarray, masks: np.ndarray, rng: np.random.Generator):
        if not self.do_augment or len(images) == 0:
            return images, masks
        pairs = [self._augment_one(im, mk, rng) for im, mk in zip(images, masks, strict=True)]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])

    def _augment_one(self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator):
        """Turns, flips and rotation; then, only where configured (so that seeded batches stay as they were
        without them), zoom and colour jitter."""
        image, mask = augment(image, mask, rng, max_angle=self.max_angle)
        if self.zoom != (1.0, 1.0):
            image, mask = random_zoom(image, mask, rng, self.zoom)
        if self.jitter > 0:
            image = colour_jitter(image, rng, self.jitter)
        return image, mask

    def batch(self, step: int, n_labeled: int, n_unlabeled: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(labeled images, their masks, unlabeled images) for one step; all uint8."""
        rng = np.random.default_rng([self.seed, step])
        index = rng.integers(0, len(self.labeled), size=n_labeled)
        images, masks = self._augment(self.labeled.images[index], self.labeled.masks[index], rng)
        pool = self.unlabeled.images if self.unlabeled is not None else self.labeled.images
        u_index = rng.integers(0, len(pool), size=n_unlabeled)
        u_images = pool[u_index]
        blank = np.zeros(u_images.shape[:3], np.uint8)
        u_images, _ = self._augment(u_images, blank, rng)
        return images, masks, u_images
