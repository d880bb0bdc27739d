"""Slide and mask I/O: TIFF (multi-page, pyramidal, 16-bit, float) via tifffile, PNG/JPEG/BMP via Pillow.

Every slide reads as RGB uint8 (H, W, 3) whatever its source:

- grayscale is replicated to 3 channels, RGBA drops alpha, 2 channels get a zero third channel, more than 4
  channels keep the first 3;
- 8-bit data is kept as is; 16-bit, 32-bit and float data are scaled to uint8 between the 1st and 99.8th
  percentiles, computed once per slide (per channel, or jointly for RGB colour data) so that all regions of a
  slide share one scaling;
- a TIFF's channel axis comes from its tags (tifffile's series axes: ``S`` samples, ``C`` channels) and shape;
  pages count as channels when the series has exactly one axis besides Y and X and it holds 3 or 4 planes;
  otherwise the first plane of every extra axis is used. ``channel_axis`` overrides this for TIFFs;
- a tiled, multi-strip or pyramidal TIFF above ``LAZY_PIXELS`` is read lazily through zarr (level 0 of a
  pyramid): ``read_region`` decodes only the tiles it touches.

Masks are 2D integer label images, saved as zlib-compressed TIFF, uint8 when labels fit else uint16.
All writes are atomic: a temporary file in the target's folder, fsync, then ``os.replace``.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError

SLIDE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
TIFF_SUFFIXES = (".tif", ".tiff")
LAZY_PIXELS = 4096 * 4096
PERCENTILES = (1.0, 99.8)
SCALING_SAMPLE_PIXELS = 2048 * 2048  # percentiles on the whole image up to this size, else on a subsample
SCALING_SAMPLE_TILES = 64  # tiles sampled from a lazy slide that has no small pyramid level

_KINDS = "PNG, JPEG, BMP or TIFF"


# --------------------------------------------------------------------------------------------- atomic writes


@contextlib.contextmanager
def _atomic_target(path: str | os.PathLike[str]) -> Iterator[io.BufferedWriter]:
    """Yield a binary file in ``path``'s folder that replaces ``path`` atomically once the block succeeds."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with open(tmp, "wb") as fh:  # opened by name: writers such as tifffile want a named file
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, path.stat().st_mode & 0o7777 if path.exists() else 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Flush a folder's entry table so a rename survives a crash (best effort; not on every OS)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: readers see the old file or the new one, never a partial one."""
    with _atomic_target(path) as fh:
        fh.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


# --------------------------------------------------------------------------------------------- slide listing


def list_slides(folder: str | os.PathLike[str]) -> list[Path]:
    """Image files directly in ``folder`` (not recursive), sorted by name, hidden files skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder; pass the folder that holds the slides")
    found = [
        p for p in folder.iterdir() if not p.name.startswith(".") and p.suffix.lower() in SLIDE_SUFFIXES and p.is_file()
    ]
    return sorted(found, key=lambda p: p.name)


# --------------------------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class _Layout:
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


def _layout_from_override(path: Path, shape: tuple[int, ...], channel_axis: int) -> _Layout:
    """Layout with the user's channel axis; Y and X are the last two of the remaining axes."""
    ndim = len(shape)
    if not -ndim <= channel_axis < ndim:
        raise InputError(
            f"{path}: channel axis {channel_axis} is out of range for an image of shape {shape}; "
            f"pick an axis between {-ndim} and {ndim - 1} or leave it automatic"
        )
    c = channel_axis % ndim
    rest = [a for a in range(ndim) if a != c]
    return _Layout(ndim, rest[-2], rest[-1], c)


def tiff_layout(
    axes: str, shape: tuple[int, ...], channel_axis: int | None = None, path: Path | None = None
) -> _Layout:
    """Decide where Y, X and the channels are in a TIFF series from its axes string and shape.

    ``S`` (samples: RGB, planar or contiguous) wins, then ``C`` (ImageJ/OME channels); with neither, a single
    extra axis of 3 or 4 planes is taken as channels, a last axis of at most 4 after two large ones as
    channels-last (data written without tags), and any other extra axis is read at its first plane.
    """
    ndim = len(shape)
    if ndim < 2:
        raise InputError(f"{path}: a {ndim}D array is not an image; save it as a 2D image")
    if ndim == 2:
        return _Layout(2, 0, 1, None)
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
        return _Layout(3, 0, 1, 2)  # channels-last written without RGB tags
    extra = [a for a in range(ndim) if a not in (y, x)]
    if len(extra) == 1 and shape[extra[0]] in (3, 4):
        return _Layout(ndim, y, x, extra[0])
    return _Layout(ndim, y, x, None)


def _layout_with_channel(axes: str, c: int) -> _Layout:
    """Layout given a known channel axis; Y and X from the axes string, else the last two other axes."""
    ndim = len(axes)
    if "Y" in axes and "X" in axes:
        return _Layout(ndim, axes.index("Y"), axes.index("X"), c)
    rest = [a for a in range(ndim) if a != c]
    return _Layout(ndim, rest[-2], rest[-1], c)


# --------------------------------------------------------------------------------------------- scaling


@dataclass(frozen=True)
class _Scaling:
    """Linear map of source values to uint8: ``lo`` → 0, ``hi`` → 255, per channel (arrays of length C)."""

    lo: np.ndarray
    hi: np.ndarray

    def apply(self, data: np.ndarray) -> np.ndarray:
        """Scale (h, w, C) data to uint8, clipping outside [lo, hi]; NaN becomes 0."""
        span = np.where(self.hi > self.lo, self.hi - self.lo, 1.0)
        out = (data.astype(np.float32) - self.lo.astype(np.float32)) * (255.0 / span).astype(np.float32)
        out = np.nan_to_num(out, nan=0.0, posinf=255.0, neginf=0.0)
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def needs_scaling(dtype: np.dtype) -> bool:
    """True for data that is not already 8-bit (uint8 and bool are mapped without percentiles)."""
    return np.dtype(dtype) not in (np.dtype(np.uint8), np.dtype(bool))


def compute_scaling(sample: np.ndarray, joint: bool) -> _Scaling:
    """1st/99.8th percentiles of a (h, w, C) sample, per channel or over all channels (``joint``)."""
    values = sample.reshape(-1, sample.shape[-1])
    if joint:
        lo, hi = _percentiles(values.ravel())
        count = values.shape[1]
        return _Scaling(np.full(count, lo), np.full(count, hi))
    pairs = [_percentiles(values[:, k]) for k in range(values.shape[1])]
    return _Scaling(np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs]))


def _percentiles(values: np.ndarray) -> tuple[float, float]:
    if values.dtype.kind == "f":
        values = values[np.isfinite(values)]
    if values.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(values, PERCENTILES)
    return float(lo), float(hi)


def _to_rgb8(data: np.ndarray, scaling: _Scaling | None) -> np.ndarray:
    """(h, w, C) source data → (h, w, 3) uint8: scale, then replicate gray / pad 2 channels / drop alpha."""
    data = data[..., :3]
    if data.dtype == bool:
        data = data.astype(np.uint8) * 255
    elif scaling is not None:
        data = scaling.apply(data)
    channels = data.shape[-1]
    if channels == 1:
        return np.repeat(data, 3, axis=-1)
    if channels == 2:
        return np.concatenate([data, np.zeros_like(data[..., :1])], axis=-1)
    return np.ascontiguousarray(data)


# --------------------------------------------------------------------------------------------- sources


class _Source:
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


class _ArraySource(_Source):
    """A decoded array (with its layout) held in memory."""

    def __init__(self, array: np.ndarray, layout: _Layout, joint: bool):
        self.array = array
        self.layout = layout
        self.shape = (array.shape[layout.y], array.shape[layout.x])
        self.dtype = array.dtype
        self.joint_scaling = joint

    def block(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        return self.layout.to_yxc(self.array[self.layout.index(y0, y1, x0, x1)])


class _ZarrSource(_Source):
    """Level 0 of a TIFF series read tile by tile through zarr; never decodes the whole image."""

    def __init__(self, tif: Any, series: Any, layout: _Layout, joint: bool):
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


# --------------------------------------------------------------------------------------------- Slide


class Slide:
    """One slide, opened lazily: header read at open, pixels decoded on first read (or tile by tile)."""

    def __init__(self, path: Path, shape: tuple[int, int], dtype: np.dtype, loader: Any):
        self.path = path
        self.shape = shape
        self.dtype = np.dtype(dtype)
        self._loader = loader
        self._source: _Source | None = None
        self._scaling: _Scaling | None = None
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
        return isinstance(self._get_source(), _ZarrSource)

    def _get_source(self) -> _Source:
        with self._lock:
            if self._source is None:
                try:
                    self._source = self._loader()
                except InputError:
                    raise
                except Exception as exc:  # decoder errors come in many types
                    raise _unreadable(self.path, exc) from exc
            return self._source

    def _get_scaling(self, source: _Source) -> _Scaling | None:
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
            raise _unreadable(self.path, exc) from exc
        out[y0 - y : y1 - y, x0 - x : x1 - x] = _to_rgb8(data, scaling)
        return out

    def close(self) -> None:
        """Release file handles and decoded pixels (the slide reopens on the next read)."""
        with self._lock:
            if self._source is not None:
                self._source.close()
                self._source = None


def _unreadable(path: Path, exc: BaseException | None = None) -> InputError:
    why = f" ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no detail'})" if exc else ""
    return InputError(
        f"{path}: not a readable image ({_KINDS} expected){why}; remove it from the slide folder or convert it"
    )


def open_slide(path: str | os.PathLike[str], channel_axis: int | None = None) -> Slide:
    """Open a slide lazily (reads the header only); InputError for a missing, empty or unreadable file.

    ``channel_axis`` overrides the channel axis of a TIFF's (squeezed) series array, e.g. 0 for
    channels-first; PNG, JPEG and BMP are channels-last by format and ignore it.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file; check the path or refresh the project")
    if not path.is_file():
        raise InputError(f"{path}: not a file; pass an image file ({_KINDS})")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file (0 bytes); remove it from the slide folder or copy it again")
    if path.suffix.lower() in TIFF_SUFFIXES or _is_tiff(path):
        slide = _open_tiff(path, channel_axis)
    else:
        slide = _open_pillow(path)
    if slide.shape[0] == 0 or slide.shape[1] == 0:
        raise InputError(f"{path}: image of size {slide.shape} has no pixels; remove it from the slide folder")
    return slide


def _is_tiff(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(4) in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


# --------------------------------------------------------------------------------------------- TIFF


def _open_tiff(path: Path, channel_axis: int | None) -> Slide:
    """Parse a TIFF's tags (no pixel decoding) and return a Slide that loads it whole or lazily."""
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
        raise _unreadable(path, exc) from exc
    size = (shape[layout.y], shape[layout.x])

    def load() -> _Source:
        if lazy:
            tif = tifffile.TiffFile(path)
            try:
                return _ZarrSource(tif, tif.series[0], layout, joint)
            except Exception:
                tif.close()
                raise
        return _ArraySource(tifffile.imread(path, series=0, level=0), layout, joint)

    return Slide(path, size, dtype, load)


def _is_rgb(series: Any) -> bool:
    page = series.keyframe if hasattr(series, "keyframe") else series.pages[0]
    return int(getattr(page, "photometric", 0)) in (2, 6)  # RGB, YCbCr


def _wants_lazy(series: Any, shape: tuple[int, ...], layout: _Layout) -> bool:
    """Large TIFFs stored in several tiles/strips, or with a pyramid, are read lazily."""
    if shape[layout.y] * shape[layout.x] <= LAZY_PIXELS:
        return False
    if len(getattr(series, "levels", [])) > 1:
        return True
    page = series.keyframe
    return bool(page.is_tiled or len(page.dataoffsets) > 1)


# --------------------------------------------------------------------------------------------- PNG/JPEG/BMP


_PIL_DTYPES = {"I;16": np.uint16, "I;16B": np.uint16, "I;16L": np.uint16, "I": np.int32, "F": np.float32}


def _open_pillow(path: Path) -> Slide:
    """Read a PNG/JPEG/BMP header with Pillow; pixels are decoded on first read."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            width, height = img.size
            mode, fmt = img.mode, img.format
            tile_modes = [getattr(t, "args", None) for t in getattr(img, "tile", [])]
    except Exception as exc:
        raise _unreadable(path, exc) from exc
    sixteen_bit_rgb = fmt == "PNG" and any(isinstance(a, str) and a.endswith(";16B") for a in tile_modes)
    dtype = np.uint16 if sixteen_bit_rgb else _PIL_DTYPES.get(mode, np.uint8)

    def load() -> _Source:
        array = _decode_png16(path) if sixteen_bit_rgb else _decode_pillow(path)
        if array.ndim == 2:
            return _ArraySource(array, _Layout(2, 0, 1, None), joint=True)
        return _ArraySource(array, _Layout(3, 0, 1, 2), joint=True)

    return Slide(path, (height, width), np.dtype(dtype), load)


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


# --------------------------------------------------------------------------------------------- masks


def read_mask(path: str | os.PathLike[str]) -> np.ndarray:
    """A 2D integer label image (uint8 or uint16) from a TIFF or PNG/BMP/JPEG file.

    A 3- or 4-channel mask is accepted when its colour channels are equal (the first one is used).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such mask file; check the path")
    try:
        data = _read_mask_array(path)
    except Exception as exc:
        raise InputError(
            f"{path}: not a readable mask ({type(exc).__name__}); save masks as PNG or TIFF label images"
        ) from exc
    return as_label_image(data, path)


def _read_mask_array(path: Path) -> np.ndarray:
    if path.suffix.lower() in TIFF_SUFFIXES or _is_tiff(path):
        import tifffile

        return tifffile.imread(path, series=0, level=0)
    from PIL import Image

    with Image.open(path) as img:
        if img.mode in ("1", "LA"):
            img = img.convert("L")
        if img.mode == "PA":
            img = img.convert("P")
        return np.asarray(img)  # palette images keep their indices: the indices are the labels


def as_label_image(data: np.ndarray, path: Path | str = "mask") -> np.ndarray:
    """Validate and convert an array to a 2D uint8/uint16 label image; InputError naming ``path`` if not."""
    data = np.asarray(data)
    if data.ndim == 3 and data.shape[-1] in (3, 4):
        colour = data[..., :3]
        if not (np.array_equal(colour[..., 0], colour[..., 1]) and np.array_equal(colour[..., 0], colour[..., 2])):
            raise InputError(
                f"{path}: colour mask with differing channels; save it as a single-channel label image "
                "(0 = background, 1, 2, ... = classes)"
            )
        data = colour[..., 0]
    if data.ndim != 2:
        raise InputError(f"{path}: mask of shape {data.shape} is not a 2D label image; save one label image per slide")
    if data.dtype == bool:
        return data.astype(np.uint8)
    if data.dtype.kind == "f":
        if not np.all(np.isfinite(data)) or not np.array_equal(data, np.round(data)):
            raise InputError(f"{path}: mask holds non-integer values; save integer class labels (0, 1, 2, ...)")
    elif data.dtype.kind not in "ui":
        raise InputError(f"{path}: mask of type {data.dtype} is not a label image; save integer class labels")
    if data.size and data.min() < 0:
        raise InputError(f"{path}: mask holds negative labels; use 0 for background and 1, 2, ... for classes")
    top = int(data.max()) if data.size else 0
    if top > np.iinfo(np.uint16).max:
        raise InputError(f"{path}: mask label {top} exceeds 65535; renumber the classes")
    return data.astype(np.uint8 if top < 256 else np.uint16)


def write_mask(path: str | os.PathLike[str], mask: np.ndarray) -> None:
    """Save a label image atomically as zlib-compressed TIFF: uint8 when labels < 256, else uint16."""
    import tifffile

    mask = as_label_image(mask, path)
    with _atomic_target(path) as fh:
        tifffile.imwrite(fh, mask, photometric="minisblack", compression="zlib", metadata=None)
