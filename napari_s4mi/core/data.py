"""Training data: which slides play which role, their tiles at network size, and the two-stream sampler.

Labeled slides give (image, mask) tiles; unlabeled slides give image tiles only: their mask files are never
opened, so hidden labels cannot leak into the unlabeled stream.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch

from .errors import ProjectError
from .preprocess import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Tile,
    TilingSpec,
    augment,
    resize_image,
    resize_mask,
    tile_grid,
)
from .project import Project

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
    """Read slides (and, only when asked, their masks) and cut them into network-size tiles."""
    size = spec.input_size
    images: list[np.ndarray] = []
    masks: list[np.ndarray] = []
    owners: list[str] = []
    for slide_id in ids:
        with project.open_slide(slide_id) as slide:
            mask = project.read_mask(slide_id) if with_masks else None
            for tile in tile_grid(slide.shape[0], slide.shape[1], spec):
                region = slide.read_region(tile.y, tile.x, tile.h, tile.w)
                images.append(np.clip(resize_image(region, size), 0, 255).round().astype(np.uint8))
                if mask is not None:
                    masks.append(resize_mask(_crop_padded(mask, tile), size).astype(np.uint8))
                owners.append(slide_id)
    shape = (0, size, size, 3)
    image_array = np.stack(images) if images else np.zeros(shape, np.uint8)
    mask_array = (np.stack(masks) if masks else np.zeros(shape[:3], np.uint8)) if with_masks else None
    return TileSet(image_array, mask_array, owners)


def is_colour(tiles: TileSet, sample: int = 16) -> bool:
    """True when the tiles carry colour (channels differ), i.e. red normalisation makes sense."""
    head = tiles.images[:sample].astype(np.int16)
    return bool(np.abs(head[..., 0] - head[..., 1]).mean() + np.abs(head[..., 0] - head[..., 2]).mean() > 1.0)


def normalise_batch(images: np.ndarray, red_norm: bool, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 (N, S, S, 3) → float (N, 3, S, S): [0, 1], optional red normalisation, ImageNet standardisation."""
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float().div_(255.0)
    if red_norm:
        norm = torch.sqrt((x * x).sum(dim=1, keepdim=False) + 1e-6)
        x[:, 0] = x[:, 0] / norm
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous()


class TwoStreamSampler:
    """Draws the labeled and unlabeled parts of each batch, seeded by (seed, step) so resuming is exact.

    The labeled stream samples with replacement, so one annotated slide is enough. With no unlabeled slides
    (100% labels) the unlabeled stream draws labeled images with their masks hidden.
    """

    def __init__(self, labeled: TileSet, unlabeled: TileSet | None, seed: int, do_augment: bool, max_angle: float):
        if len(labeled) == 0:
            raise ProjectError("the labeled slides gave no tiles: check that the annotated slides are readable")
        self.labeled = labeled
        self.unlabeled = unlabeled if unlabeled is not None and len(unlabeled) else None
        self.seed = seed
        self.do_augment = do_augment
        self.max_angle = max_angle

    def _augment(self, images: np.ndarray, masks: np.ndarray, rng: np.random.Generator):
        if not self.do_augment or len(images) == 0:
            return images, masks
        pairs = [augment(im, mk, rng, max_angle=self.max_angle) for im, mk in zip(images, masks, strict=True)]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])

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


class PrefetchedBatches:
    """A sampler's batches, each next step's drawn and augmented on a helper thread while the current step trains
    (the sampler is seeded by step, so the batches are the same as drawn in line). On a GPU whose step replays in
    ~30 ms, drawing a `paper` batch (~50-90 ms of NumPy) in line would dominate the step."""

    def __init__(self, sampler: TwoStreamSampler, n_labeled: int, n_unlabeled: int, end_step: int):
        self.sampler, self.sizes, self.end_step = sampler, (n_labeled, n_unlabeled), end_step
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="s4mi-batches")
        self._pending: tuple[int, Future] | None = None

    def get(self, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The batch of ``step``; the one of ``step + 1`` starts being drawn."""
        if self._pending is not None and self._pending[0] == step:
            batch = self._pending[1].result()
        else:
            batch = self.sampler.batch(step, *self.sizes)
        self._pending = None
        if step + 1 < self.end_step:
            self._pending = (step + 1, self._pool.submit(self.sampler.batch, step + 1, *self.sizes))
        return batch

    def close(self) -> None:
        """Wait for the batch in flight (if any) and end the helper thread."""
        self._pool.shutdown(wait=True, cancel_futures=True)
