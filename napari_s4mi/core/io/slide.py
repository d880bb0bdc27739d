"""A slide opened lazily: header read at open, pixels decoded on first read (or tile by tile), always RGB uint8."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .files import TIFF_SUFFIXES, is_tiff
from .readers import KINDS, read_pillow_header, read_tiff_header, unreadable
from .scaling import Scaling, compute_scaling, needs_scaling, to_rgb8
from .sources import Source, ZarrSource


class Slide:
    """One slide, opened lazily: header read at open, pixels decoded on first read (or tile by tile)."""

    def __init__(self, path: Path, shape: tuple[int, int], dtype: np.dtype, loader: Any):
        self.path = path
        self.shape = shape
        self.dtype = np.dtype(dtype)
        self._loader = loader
        self._source: Source | None = None
        self._scaling: Scaling | None = None
        self._scaling_done = False
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"Slide({str(self.path)!r}, shape={self.shape}, dtype={self.dtype})"

    def __enter__(self) -> Slide:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def is_lazy(self) -> bool:
        """True when pixels are decoded tile by tile instead of loaded whole."""
        return isinstance(self._get_source(), ZarrSource)

    def _get_source(self) -> Source:
        with self._lock:
            if self._source is None:
                try:
                    self._source = self._loader()
                except InputError:
                    raise
                except Exception as exc:  # decoder errors come in many types
                    raise unreadable(self.path, exc) from exc
            return self._source

    def _get_scaling(self, source: Source) -> Scaling | None:
        """The slide's one scaling to uint8, computed on first use and kept across close()."""
        with self._lock:
            if not self._scaling_done:
                if needs_scaling(source.dtype):
                    self._scaling = compute_scaling(source.scaling_sample()[..., :3], source.joint_scaling)
                self._scaling_done = True
            return self._scaling

    def read(self) -> np.ndarray:
        """The whole slide as RGB uint8 (H, W, 3)."""
        return self.read_region(0, 0, self.shape[0], self.shape[1])

    def read_region(self, y: int, x: int, h: int, w: int) -> np.ndarray:
        """RGB uint8 (h, w, 3) of rows y..y+h, columns x..x+w; zero where the region leaves the slide."""
        if h < 0 or w < 0:
            raise ValueError(f"region size must be non-negative, got h={h}, w={w}")
        out = np.zeros((h, w, 3), np.uint8)
        height, width = self.shape
        y0, x0, y1, x1 = max(y, 0), max(x, 0), min(y + h, height), min(x + w, width)
        if y1 <= y0 or x1 <= x0:
            return out
        source = self._get_source()
        try:
            data = source.block(y0, y1, x0, x1)
            scaling = self._get_scaling(source)
        except InputError:
            raise
        except Exception as exc:  # decoder errors come in many types
            raise unreadable(self.path, exc) from exc
        out[y0 - y : y1 - y, x0 - x : x1 - x] = to_rgb8(data, scaling)
        return out

    def close(self) -> None:
        """Release file handles and decoded pixels (the slide reopens on the next read)."""
        with self._lock:
            if self._source is not None:
                self._source.close()
                self._source = None


def open_slide(path: str | os.PathLike[str], channel_axis: int | None = None) -> Slide:
    """Open a slide lazily (reads the header only); InputError for a missing, empty or unreadable file.

    ``channel_axis`` overrides the channel axis of a TIFF's (squeezed) series array, e.g. 0 for
    channels-first; PNG, JPEG and BMP are channels-last by format and ignore it.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file; check the path or refresh the project")
    if not path.is_file():
        raise InputError(f"{path}: not a file; pass an image file ({KINDS})")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file (0 bytes); remove it from the slide folder or copy it again")
    if path.suffix.lower() in TIFF_SUFFIXES or is_tiff(path):
        header = read_tiff_header(path, channel_axis)
    else:
        header = read_pillow_header(path)
    slide = Slide(path, header.shape, header.dtype, header.load)
    if slide.shape[0] == 0 or slide.shape[1] == 0:
        raise InputError(f"{path}: image of size {slide.shape} has no pixels; remove it from the slide folder")
    return slide
