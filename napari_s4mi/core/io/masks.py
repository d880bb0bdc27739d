"""Label masks: read from TIFF or PNG/BMP/JPEG, validated as 2D integer images, saved atomically as TIFF."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..atomic import atomic_target
from ..errors import InputError
from .files import TIFF_SUFFIXES, is_tiff


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
    if path.suffix.lower() in TIFF_SUFFIXES or is_tiff(path):
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
    with atomic_target(path) as fh:
        tifffile.imwrite(fh, mask, photometric="minisblack", compression="zlib", metadata=None)
