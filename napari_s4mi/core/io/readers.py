"""Format readers: a slide file's header (size, dtype) and a loader for its pixels, for TIFF and PNG/JPEG/BMP.

Only the header is parsed here; the loader decodes the pixels (whole, or lazily through zarr for a large tiled,
multi-strip or pyramidal TIFF) when the Slide first reads.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..errors import InputError
from .layout import Layout, tiff_layout
from .sources import ArraySource, Source, ZarrSource

LAZY_PIXELS = 4096 * 4096
KINDS = "PNG, JPEG, BMP or TIFF"


class Header(NamedTuple):
    """What opening a slide file reads: its (H, W), its dtype, and a loader of its pixel source."""

    shape: tuple[int, int]
    dtype: np.dtype
    load: Callable[[], Source]


def unreadable(path: Path, exc: BaseException | None = None) -> InputError:
    """The error for a file that is not a readable image, with the decoder's reason when there is one."""
    why = f" ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no detail'})" if exc else ""
    return InputError(
        f"{path}: not a readable image ({KINDS} expected){why}; remove it from the slide folder or convert it"
    )


# --------------------------------------------------------------------------------------------- TIFF


def read_tiff_header(path: Path, channel_axis: int | None) -> Header:
    """Parse a TIFF's tags (no pixel decoding); the loader reads it whole or lazily."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            shape, axes = tuple(series.shape), series.axes
            layout = tiff_layout(axes, shape, channel_axis, path)
            joint = "S" in axes and _is_rgb(series)
            lazy = _wants_lazy(series, shape, layout)
            dtype = series.dtype
    except InputError:
        raise
    except Exception as exc:
        raise unreadable(path, exc) from exc
    size = (shape[layout.y], shape[layout.x])

    def load() -> Source:
        if lazy:
            tif = tifffile.TiffFile(path)
            try:
                return ZarrSource(tif, tif.series[0], layout, joint)
            except Exception:
                tif.close()
                raise
        return ArraySource(tifffile.imread(path, series=0, level=0), layout, joint)

    return Header(size, np.dtype(dtype), load)


def _is_rgb(series: Any) -> bool:
    page = series.keyframe if hasattr(series, "keyframe") else series.pages[0]
    return int(getattr(page, "photometric", 0)) in (2, 6)  # RGB, YCbCr


def _wants_lazy(series: Any, shape: tuple[int, ...], layout: Layout) -> bool:
    """Large TIFFs stored in several tiles/strips, or with a pyramid, are read lazily."""
    if shape[layout.y] * shape[layout.x] <= LAZY_PIXELS:
        return False
    if len(getattr(series, "levels", [])) > 1:
        return True
    page = series.keyframe
    return bool(page.is_tiled or len(page.dataoffsets) > 1)


# --------------------------------------------------------------------------------------------- PNG/JPEG/BMP


_PIL_DTYPES = {"I;16": np.uint16, "I;16B": np.uint16, "I;16L": np.uint16, "I": np.int32, "F": np.float32}


def read_pillow_header(path: Path) -> Header:
    """Read a PNG/JPEG/BMP header with Pillow; pixels are decoded on first read."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            width, height = img.size
            mode, fmt = img.mode, img.format
            tile_modes = [getattr(t, "args", None) for t in getattr(img, "tile", [])]
    except Exception as exc:
        raise unreadable(path, exc) from exc
    sixteen_bit_rgb = fmt == "PNG" and any(isinstance(a, str) and a.endswith(";16B") for a in tile_modes)
    dtype = np.uint16 if sixteen_bit_rgb else _PIL_DTYPES.get(mode, np.uint8)

    def load() -> Source:
        array = _decode_png16(path) if sixteen_bit_rgb else _decode_pillow(path)
        if array.ndim == 2:
            return ArraySource(array, Layout(2, 0, 1, None), joint=True)
        return ArraySource(array, Layout(3, 0, 1, 2), joint=True)

    return Header((height, width), np.dtype(dtype), load)


def _decode_png16(path: Path) -> np.ndarray:
    """16-bit colour PNG with imagecodecs (Pillow reduces it to 8 bits)."""
    import imagecodecs

    return imagecodecs.png_decode(path.read_bytes())


def _decode_pillow(path: Path) -> np.ndarray:
    """Decode with Pillow into a numpy array: palettes and exotic modes converted to RGB, alpha dropped."""
    from PIL import Image

    with Image.open(path) as img:
        img.load()
        if img.mode in ("1", "LA", "La"):
            img = img.convert("L")
        elif img.mode in ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV", "RGBX", "RGBa", "RGBA"):
            img = img.convert("RGB")
        array = np.asarray(img)
    return array.astype(array.dtype.newbyteorder("=")) if not array.dtype.isnative else array
