"""Write predictions next to each other as files a user can open: masks as PNG (TIFF for huge slides)."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from .atomic import atomic_target, atomic_write_bytes
from .disk import writing
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
    """Write `<stem>.png` (or `<stem>.tif` past PNG_MAX_PIXELS) and optionally `<stem>_disagreement.tif`, each
    atomically; OutputError (one line) when the disk cannot take them, and no partial file is left."""
    out_dir = Path(out_dir)
    labels = prediction.labels
    if labels.size > PNG_MAX_PIXELS:
        path = out_dir / f"{stem}.tif"
        with writing("writing a prediction", path), atomic_target(path) as handle:
            with tifffile.TiffWriter(handle, bigtiff=True) as writer:
                writer.write(labels, tile=(512, 512), compression="zlib")
    else:
        path = out_dir / f"{stem}.png"
        with writing("writing a prediction", path):
            atomic_write_bytes(path, _png_bytes(mask_for_viewing(labels, num_classes)))
    if disagreement and prediction.disagreement is not None:
        target = out_dir / f"{stem}_disagreement.tif"
        with writing("writing a disagreement map", target):
            atomic_write_bytes(target, _tiff_bytes(np.asarray(prediction.disagreement)))
    work = out_dir / f".{stem}.work"
    del prediction
    shutil.rmtree(work, ignore_errors=True)
    return path
