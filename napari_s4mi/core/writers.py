"""Write predictions next to each other as files a user can open: masks as PNG (TIFF for huge slides)."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from .atomic import atomic_write_bytes
from .inference import SlidePrediction

PNG_MAX_PIXELS = 8192 * 8192


def mask_for_viewing(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Binary masks as 0/255 (like ISIC's), multi-class masks as class ids."""
    labels = np.asarray(labels)
    return (labels > 0).astype(np.uint8) * 255 if num_classes == 2 else labels.astype(np.uint8)


def _png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _tiff_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array, compression="zlib")
    return buffer.getvalue()


def write_prediction(
    out_dir: Path, stem: str, prediction: SlidePrediction, num_classes: int, disagreement: bool = False
) -> Path:
    """Write `<stem>.png` (or `<stem>.tif` past PNG_MAX_PIXELS) and optionally `<stem>_disagreement.tif`."""
    out_dir = Path(out_dir)
    labels = prediction.labels
    if labels.size > PNG_MAX_PIXELS:
        path = out_dir / f"{stem}.tif"
        with tifffile.TiffWriter(path.with_suffix(".tif.tmp"), bigtiff=True) as writer:
            writer.write(labels, tile=(512, 512), compression="zlib")
        path.with_suffix(".tif.tmp").replace(path)
    else:
        path = out_dir / f"{stem}.png"
        atomic_write_bytes(path, _png_bytes(mask_for_viewing(labels, num_classes)))
    if disagreement and prediction.disagreement is not None:
        atomic_write_bytes(out_dir / f"{stem}_disagreement.tif", _tiff_bytes(np.asarray(prediction.disagreement)))
    work = out_dir / f".{stem}.work"
    del prediction
    shutil.rmtree(work, ignore_errors=True)
    return path
