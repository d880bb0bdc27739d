"""Where Y, X and the channels sit in a TIFF series, from its axes string, its shape or the user's override."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError


@dataclass(frozen=True)
class Layout:
    """Where Y, X and channels sit in a source array; every other axis is read at index 0."""

    ndim: int
    y: int
    x: int
    c: int | None

    def index(self, y0: int, y1: int | None, x0: int, x1: int | None) -> tuple[Any, ...]:
        """Index selecting rows y0:y1 and columns x0:x1, all channels, plane 0 of every other axis."""
        idx: list[Any] = [0] * self.ndim
        idx[self.y] = slice(y0, y1)
        idx[self.x] = slice(x0, x1)
        if self.c is not None:
            idx[self.c] = slice(None)
        return tuple(idx)

    def to_yxc(self, selected: np.ndarray) -> np.ndarray:
        """Reorder an array indexed with :meth:`index` to (h, w, C)."""
        kept = sorted(a for a in (self.y, self.x, self.c) if a is not None)
        if self.c is None:
            order = [kept.index(self.y), kept.index(self.x)]
            return np.transpose(selected, order)[..., None]
        return np.transpose(selected, [kept.index(self.y), kept.index(self.x), kept.index(self.c)])


def _layout_from_override(path: Path, shape: tuple[int, ...], channel_axis: int) -> Layout:
    """Layout with the user's channel axis; Y and X are the last two of the remaining axes."""
    ndim = len(shape)
    if not -ndim <= channel_axis < ndim:
        raise InputError(
            f"{path}: channel axis {channel_axis} is out of range for an image of shape {shape}; "
            f"pick an axis between {-ndim} and {ndim - 1} or leave it automatic"
        )
    c = channel_axis % ndim
    rest = [a for a in range(ndim) if a != c]
    return Layout(ndim, rest[-2], rest[-1], c)


def tiff_layout(axes: str, shape: tuple[int, ...], channel_axis: int | None = None, path: Path | None = None) -> Layout:
    """Decide where Y, X and the channels are in a TIFF series from its axes string and shape.

    ``S`` (samples: RGB, planar or contiguous) wins, then ``C`` (ImageJ/OME channels); with neither, a single
    extra axis of 3 or 4 planes is taken as channels, a last axis of at most 4 after two large ones as
    channels-last (data written without tags), and any other extra axis is read at its first plane.
    """
    ndim = len(shape)
    if ndim < 2:
        raise InputError(f"{path}: a {ndim}D array is not an image; save it as a 2D image")
    if ndim == 2:
        return Layout(2, 0, 1, None)
    if channel_axis is not None:
        return _layout_from_override(path or Path("image"), shape, channel_axis)
    axes = axes if len(axes) == ndim else "Q" * ndim
    if "S" in axes or "C" in axes:
        c = axes.index("S") if "S" in axes else axes.index("C")
        return _layout_with_channel(axes, c)
    if "Y" in axes and "X" in axes:
        y, x = axes.index("Y"), axes.index("X")
    else:
        y, x = ndim - 2, ndim - 1
    if ndim == 3 and x == 2 and shape[2] <= 4 < min(shape[0], shape[1]):
        return Layout(3, 0, 1, 2)  # channels-last written without RGB tags
    extra = [a for a in range(ndim) if a not in (y, x)]
    if len(extra) == 1 and shape[extra[0]] in (3, 4):
        return Layout(ndim, y, x, extra[0])
    return Layout(ndim, y, x, None)


def _layout_with_channel(axes: str, c: int) -> Layout:
    """Layout given a known channel axis; Y and X from the axes string, else the last two other axes."""
    ndim = len(axes)
    if "Y" in axes and "X" in axes:
        return Layout(ndim, axes.index("Y"), axes.index("X"), c)
    rest = [a for a in range(ndim) if a != c]
    return Layout(ndim, rest[-2], rest[-1], c)
