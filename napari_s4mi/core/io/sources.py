"""Pixel sources behind a Slide: a decoded array in memory, or level 0 of a TIFF read tile by tile through zarr."""

from __future__ import annotations

from typing import Any

import numpy as np

from .layout import Layout

SCALING_SAMPLE_PIXELS = 2048 * 2048  # percentiles on the whole image up to this size, else on a subsample
SCALING_SAMPLE_TILES = 64  # tiles sampled from a lazy slide that has no small pyramid level


class Source:
    """Array-like source of (h, w, C) blocks in the slide's own dtype."""

    shape: tuple[int, int]
    dtype: np.dtype
    joint_scaling: bool = False

    def block(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        raise NotImplementedError

    def scaling_sample(self) -> np.ndarray:
        """A (h, w, C) sample for the percentiles: the whole image when small, else a strided subsample."""
        h, w = self.shape
        step = max(1, int(np.ceil(np.sqrt(h * w / SCALING_SAMPLE_PIXELS))))
        return self.block(0, h, 0, w)[::step, ::step]

    def close(self) -> None:
        """Release file handles."""


class ArraySource(Source):
    """A decoded array (with its layout) held in memory."""

    def __init__(self, array: np.ndarray, layout: Layout, joint: bool):
        self.array = array
        self.layout = layout
        self.shape = (array.shape[layout.y], array.shape[layout.x])
        self.dtype = array.dtype
        self.joint_scaling = joint

    def block(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        return self.layout.to_yxc(self.array[self.layout.index(y0, y1, x0, x1)])


class ZarrSource(Source):
    """Level 0 of a TIFF series read tile by tile through zarr; never decodes the whole image."""

    def __init__(self, tif: Any, series: Any, layout: Layout, joint: bool):
        import zarr

        self.tif = tif
        self.series = series
        self.layout = layout
        self.array = zarr.open(series.aszarr(level=0), mode="r")
        self.shape = (self.array.shape[layout.y], self.array.shape[layout.x])
        self.dtype = np.dtype(self.array.dtype)
        self.joint_scaling = joint

    def block(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        return self.layout.to_yxc(np.asarray(self.array[self.layout.index(y0, y1, x0, x1)]))

    def scaling_sample(self) -> np.ndarray:
        """The smallest pyramid level when it is small enough, else tiles spread over level 0."""
        levels = getattr(self.series, "levels", [self.series])
        small = levels[-1]
        if len(levels) > 1 and int(np.prod(small.shape)) <= SCALING_SAMPLE_PIXELS * 4:
            data = small.asarray()
            if data.shape == tuple(small.shape):
                return self.layout.to_yxc(data[self.layout.index(0, None, 0, None)])
        return self._tile_sample()

    def _tile_sample(self) -> np.ndarray:
        """Chunk-size windows on an even grid (about SCALING_SAMPLE_PIXELS in all), stacked as one column."""
        h, w = self.shape
        th = min(h, self.array.chunks[self.layout.y])
        tw = min(w, self.array.chunks[self.layout.x])
        count = min(SCALING_SAMPLE_TILES, max(1, SCALING_SAMPLE_PIXELS // (th * tw)))
        side = max(1, int(np.sqrt(count)))
        ys = np.unique(np.linspace(0, h - th, side).astype(int) // th * th)
        xs = np.unique(np.linspace(0, w - tw, side).astype(int) // tw * tw)
        blocks = [self.block(y, y + th, x, x + tw) for y in ys for x in xs]
        return np.concatenate([b.reshape(-1, 1, b.shape[-1]) for b in blocks], axis=0)

    def close(self) -> None:
        self.tif.close()
