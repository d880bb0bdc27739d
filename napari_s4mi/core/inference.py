"""Whole-slide prediction: tile (or resize) a slide, batch the tiles through a model, stitch full-size labels.

Each tile of :func:`~napari_s4mi.core.preprocess.tile_grid` is read with ``slide.read_region`` (blank beyond
the slide), made a network input as in training (``preprocess.network_tile`` then ``inputs.normalise_batch``),
and predicted in batches. The (K, S, S)
probabilities are resized back to the tile's size (bilinear, torch), reduced to labels by argmax, cropped to
the part inside the slide and written into the output; only one batch of full-resolution tile probabilities
exists at a time.
Slides above ``large_pixels`` are stitched into disk-backed TIFFs (``tifffile.memmap``) instead of RAM arrays,
their space checked and reserved up front (a full disk fails at once, with one line, never by SIGBUS on a sparse
map); a failed prediction removes them.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

from .disk import allocate, ensure_free_space, writing
from .inputs import normalise_batch
from .preprocess import Tile, TilingSpec, network_tile, tile_grid

LABELS_FILE = "labels.tif"
DISAGREEMENT_FILE = "disagreement.tif"
LARGE_PIXELS = 4096 * 4096

TileOutput = torch.Tensor | tuple[torch.Tensor, torch.Tensor]
PredictTiles = Callable[[torch.Tensor], TileOutput]


class SlideLike(Protocol):
    """What prediction needs from a slide (``napari_s4mi.core.io.Slide`` is one)."""

    shape: tuple[int, int]

    def read_region(self, y: int, x: int, h: int, w: int) -> np.ndarray: ...


@dataclass
class SlidePrediction:
    """Full-resolution result: uint8 labels (H, W) and, for two networks, their disagreement (H, W) in [0, 1].

    For slides above ``large_pixels`` both are ``np.memmap`` views of TIFFs in ``out_dir`` (the disagreement
    then float16 to halve the disk space); otherwise arrays in RAM (disagreement float32), out_dir None.
    """

    labels: np.ndarray
    disagreement: np.ndarray | None
    n_tiles: int
    out_dir: Path | None = None


def predict_slide(
    slide: SlideLike,
    predict_tiles: PredictTiles,
    spec: TilingSpec,
    num_classes: int,
    red_norm: bool = False,
    batch_size: int = 8,
    out_dir: Path | None = None,
    large_pixels: int = LARGE_PIXELS,
    with_disagreement: bool = False,
    on_batch: Callable[[int, int], None] | None = None,
) -> SlidePrediction:
    """Predict a whole slide and stitch full-resolution labels (and disagreement if ``with_disagreement``).

    ``predict_tiles`` gets a CPU float32 batch (N, 3, S, S) of normalised inputs and returns probabilities
    (N, K, S, S), or ``(probs, disagreement (N, S, S))`` when ``with_disagreement``; it moves the batch to its
    device and runs the model(s) under no_grad/autocast itself. A slide with more than ``large_pixels``
    pixels is written to ``out_dir/labels.tif`` (and ``disagreement.tif``) as memory-mapped TIFFs; when
    ``out_dir`` is None a new temporary folder is used (``SlidePrediction.out_dir``; the caller deletes it).
    Tiles are read one batch ahead in a background thread while the model runs. ``on_batch(done, total)``
    is called after each batch with tile counts (progress); an exception raised there stops the prediction.
    """
    if not 1 <= num_classes <= 256:
        raise ValueError(f"num_classes must be between 1 and 256 (labels are uint8); got {num_classes}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1; got {batch_size}")
    height, width = (int(v) for v in slide.shape)
    tiles = tile_grid(height, width, spec)
    large = height * width > large_pixels
    created = False
    if large:
        created = out_dir is None or not Path(out_dir).exists()
        with writing("creating a folder for a large prediction", out_dir):
            out_dir = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="s4mi-predict-"))

    def prepare(batch: Sequence[Tile]) -> torch.Tensor:
        return network_inputs(slide, batch, spec.input_size, red_norm)

    try:
        labels, disagreement = _allocate(height, width, with_disagreement, out_dir if large else None)
        done = 0
        with ThreadPoolExecutor(max_workers=1) as reader:
            for batch, inputs in _prefetched(reader, prepare, _batches(tiles, batch_size)):
                probs, dis = _split_output(predict_tiles(inputs), with_disagreement, len(batch), num_classes)
                _stitch(batch, probs, dis, labels, disagreement)
                done += len(batch)
                if on_batch is not None:
                    on_batch(done, len(tiles))
        for array in (labels, disagreement):
            if isinstance(array, np.memmap):
                array.flush()
    except BaseException:
        if large:
            _remove_disk_outputs(out_dir, created)
        raise
    return SlidePrediction(labels, disagreement, len(tiles), out_dir if large else None)


# --------------------------------------------------------------------------------------------- helpers
def network_inputs(slide: SlideLike, tiles: Sequence[Tile], size: int, red_norm: bool) -> torch.Tensor:
    """The CPU float32 network inputs (N, 3, S, S) of ``tiles`` of a slide, made exactly as in training."""
    regions = [network_tile(slide.read_region(t.y, t.x, t.h, t.w), size) for t in tiles]
    return normalise_batch(np.stack(regions), red_norm)


def _allocate(
    height: int, width: int, with_disagreement: bool, out_dir: Path | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Zeroed outputs: in RAM, or memory-mapped TIFFs in ``out_dir`` for large slides (space checked, then
    reserved: OutputError when the disk cannot hold them)."""
    if out_dir is None:
        dis = np.zeros((height, width), np.float32) if with_disagreement else None
        return np.zeros((height, width), np.uint8), dis
    what = f"the prediction of a {height}×{width} slide"
    ensure_free_space(out_dir, height * width * (3 if with_disagreement else 1) + 2**20, what)
    with writing(f"reserving disk space for {what}", out_dir):
        out_dir.mkdir(parents=True, exist_ok=True)
        labels = _disk_array(out_dir / LABELS_FILE, height, width, np.uint8)
        dis = _disk_array(out_dir / DISAGREEMENT_FILE, height, width, np.float16) if with_disagreement else None
    return labels, dis


def _disk_array(path: Path, height: int, width: int, dtype: type) -> np.ndarray:
    """A zeroed memory-mapped TIFF whose blocks are allocated on disk now (not a sparse file)."""
    import tifffile

    array = tifffile.memmap(path, shape=(height, width), dtype=dtype)
    allocate(path, path.stat().st_size)
    return array


def _remove_disk_outputs(out_dir: Path, created: bool) -> None:
    """Remove a failed prediction's memory-mapped TIFFs (and their folder when the prediction made it)."""
    for name in (LABELS_FILE, DISAGREEMENT_FILE):
        with contextlib.suppress(OSError):
            (out_dir / name).unlink()
    if created:
        shutil.rmtree(out_dir, ignore_errors=True)


def _batches(tiles: Sequence[Tile], size: int) -> Iterator[Sequence[Tile]]:
    for start in range(0, len(tiles), size):
        yield tiles[start : start + size]


def _prefetched(
    pool: ThreadPoolExecutor,
    prepare: Callable[[Sequence[Tile]], torch.Tensor],
    batches: Iterator[Sequence[Tile]],
) -> Iterator[tuple[Sequence[Tile], torch.Tensor]]:
    """Yield (tiles, inputs) while the next batch is read and preprocessed in ``pool``."""
    pending = None
    for batch in batches:
        future = pool.submit(prepare, batch)
        if pending is not None:
            yield pending[0], pending[1].result()
        pending = (batch, future)
    if pending is not None:
        yield pending[0], pending[1].result()


def _split_output(
    output: TileOutput, with_disagreement: bool, n: int, num_classes: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Check the model's output and return (probs (N, K, S, S), disagreement (N, S, S) or None)."""
    if isinstance(output, tuple | list):
        if len(output) != 2:
            raise ValueError(f"predict_tiles returned {len(output)} values; expected probs or (probs, disagreement)")
        probs, dis = output
    else:
        probs, dis = output, None
    if with_disagreement and dis is None:
        raise ValueError("with_disagreement=True but predict_tiles returned no disagreement map")
    if probs.ndim != 4 or probs.shape[0] != n or probs.shape[1] != num_classes:
        raise ValueError(f"predict_tiles returned shape {tuple(probs.shape)}; expected ({n}, {num_classes}, S, S)")
    if dis is not None and (dis.ndim != 3 or dis.shape != probs.shape[:1] + probs.shape[2:]):
        raise ValueError(f"disagreement has shape {tuple(dis.shape)}; expected {(n, *probs.shape[2:])}")
    return probs, dis if with_disagreement else None


def _resize_back(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Bilinear resize of float (N, C, S, S) to (N, C, h, w); anti-aliased when shrinking."""
    if x.shape[-2:] == (h, w):
        return x
    shrink = h < x.shape[-2] or w < x.shape[-1]
    return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=shrink)


@torch.no_grad()
def _stitch(
    tiles: Sequence[Tile],
    probs: torch.Tensor,
    dis: torch.Tensor | None,
    labels: np.ndarray,
    disagreement: np.ndarray | None,
) -> None:
    """Resize a batch back to tile size, argmax, crop to the slide, and write into the outputs."""
    height, width = labels.shape
    for (h, w), index in _groups_by_size(tiles).items():
        tile_labels = _labels_at(_take(probs, index), h, w)
        tile_dis = None
        if dis is not None and disagreement is not None:
            tile_dis = _resize_back(_take(dis, index)[:, None].float(), h, w)[:, 0].cpu().numpy()
        for j, i in enumerate(index):
            tile = tiles[i]
            vh, vw = tile.valid_shape(height, width)
            labels[tile.y : tile.y + vh, tile.x : tile.x + vw] = tile_labels[j, :vh, :vw]
            if tile_dis is not None:
                target = disagreement[tile.y : tile.y + vh, tile.x : tile.x + vw]
                np.clip(tile_dis[j, :vh, :vw], 0.0, 1.0, out=target, casting="unsafe")


def _labels_at(probs: torch.Tensor, h: int, w: int) -> np.ndarray:
    """uint8 argmax labels (N, h, w) of probabilities (N, K, S, S) resized bilinearly to (h, w).

    Resizing is linear, so for two classes resizing p1 - p0 alone gives the same argmax at half the cost.
    The argmax itself runs in NumPy as a running maximum: torch's CPU argmax over dim 1 is ~50x slower."""
    probs = probs.float()
    if probs.shape[1] == 2:
        margin = _resize_back(probs[:, 1:2] - probs[:, 0:1], h, w)[:, 0].cpu().numpy()
        return (margin > 0).view(np.uint8)
    up = _resize_back(probs, h, w).cpu().numpy()
    best = up[:, 0].copy()
    out = np.zeros(best.shape, np.uint8)
    better = np.empty(best.shape, bool)
    for k in range(1, up.shape[1]):
        np.greater(up[:, k], best, out=better)
        out[better] = k
        np.maximum(best, up[:, k], out=best)
    return out


def _take(x: torch.Tensor, index: list[int]) -> torch.Tensor:
    """Rows ``index`` of ``x``: a view when they are consecutive (torch's CPU index_select is very slow)."""
    if index == list(range(index[0], index[-1] + 1)):
        return x[index[0] : index[-1] + 1]
    return torch.stack([x[i] for i in index])


def _groups_by_size(tiles: Sequence[Tile]) -> dict[tuple[int, int], list[int]]:
    """Indices of the tiles of each (h, w): one interpolate call per size (normally one size per batch)."""
    groups: dict[tuple[int, int], list[int]] = {}
    for i, tile in enumerate(tiles):
        groups.setdefault((tile.h, tile.w), []).append(i)
    return groups
