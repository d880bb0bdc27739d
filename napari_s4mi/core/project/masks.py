"""The project's mask store: label masks under ``masks/``, predictions under ``predictions/``, the annotated flag."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..atomic import atomic_target
from ..errors import InputError, ProjectError
from ..io import as_label_image, read_mask, write_mask
from ..names import check_name_fits, is_file
from .base import ProjectBase
from .manifest import PREDICTIONS_DIRNAME


class MaskStore(ProjectBase):
    """Saved masks and predictions of a project's slides (one TIFF per slide, written atomically)."""

    def mask_path(self, slide_id: str) -> Path:
        """``masks/<id with '/' replaced by '__'>.tif``."""
        return self.masks_dir / (slide_id.replace("/", "__") + ".tif")

    def has_mask(self, slide_id: str) -> bool:
        return is_file(self.mask_path(slide_id))

    def read_mask(self, slide_id: str) -> np.ndarray:
        """The slide's saved label mask; ProjectError when none was saved."""
        path = self.mask_path(slide_id)
        if not is_file(path):
            raise ProjectError(f"{slide_id}: no mask saved yet ({path}); paint and save one, or import masks")
        return read_mask(path)

    def save_mask(self, slide_id: str, mask: np.ndarray) -> Path:
        """Save a slide's label mask atomically; the annotated flag is left as it is."""
        mask = self._validated_mask(slide_id, mask, "mask")
        path = self.mask_path(slide_id)
        check_name_fits(path, mask_name_fix(slide_id))
        self.masks_dir.mkdir(parents=True, exist_ok=True)
        write_mask(path, mask)
        return path

    def _validated_mask(self, slide_id: str, mask: np.ndarray, source: str | Path) -> np.ndarray:
        """The mask as a label image of the slide's shape with labels < len(classes); InputError if not."""
        mask = as_label_image(mask, source)
        with self.open_slide(slide_id) as slide:
            shape = slide.shape
        if mask.shape != shape:
            raise shape_mismatch(source, mask.shape, self.slide_path(slide_id), shape, "paint it at the slide's size")
        top = int(mask.max()) if mask.size else 0
        if top >= len(self.classes):
            raise InputError(
                f"{source}: label {top} but the project has {len(self.classes)} classes {self.classes}; "
                "add classes or relabel the mask"
            )
        return mask

    def set_annotated(self, slide_id: str, flag: bool = True) -> None:
        """Mark a slide as annotated (its saved mask becomes a label) or not; saves the manifest."""
        self.record(slide_id)
        if flag and not self.has_mask(slide_id):
            raise ProjectError(f"{slide_id}: no mask saved; save the mask before marking the slide annotated")
        with self._transaction():
            self.record(slide_id).annotated = bool(flag)

    # ----------------------------------------------------------------------------------------- predictions

    @property
    def predictions_dir(self) -> Path:
        """``<root>/predictions``: the latest predicted labels (and disagreement) of each slide."""
        return self.root / PREDICTIONS_DIRNAME

    def prediction_path(self, slide_id: str) -> Path:
        """``predictions/<id with '/' replaced by '__'>.tif``."""
        return self.predictions_dir / (slide_id.replace("/", "__") + ".tif")

    def disagreement_path(self, slide_id: str) -> Path:
        """``predictions/<id>.disagreement.tif`` (float16 in [0, 1])."""
        return self.predictions_dir / (slide_id.replace("/", "__") + ".disagreement.tif")

    def has_prediction(self, slide_id: str) -> bool:
        return is_file(self.prediction_path(slide_id))

    def save_prediction(self, slide_id: str, labels: np.ndarray, disagreement: np.ndarray | None = None) -> Path:
        """Save a slide's predicted labels (and the networks' disagreement) atomically; masks stay untouched."""
        import tifffile

        labels = self._validated_mask(slide_id, labels, "prediction")
        self.predictions_dir.mkdir(parents=True, exist_ok=True)
        path = self.prediction_path(slide_id)
        write_mask(path, labels)
        target = self.disagreement_path(slide_id)
        if disagreement is None:
            target.unlink(missing_ok=True)
        else:
            with atomic_target(target) as fh:
                tifffile.imwrite(fh, np.asarray(disagreement, dtype=np.float16), compression="zlib", metadata=None)
        return path

    def read_prediction(self, slide_id: str) -> tuple[np.ndarray, np.ndarray | None]:
        """The slide's latest predicted labels and disagreement (None when not saved); ProjectError if none."""
        import tifffile

        path = self.prediction_path(slide_id)
        if not is_file(path):
            raise ProjectError(f"{slide_id}: not predicted yet; run a prediction first")
        target = self.disagreement_path(slide_id)
        disagreement = tifffile.imread(target).astype(np.float32) if is_file(target) else None
        return read_mask(path), disagreement


def mask_name_fix(slide_id: str) -> str:
    """The fix for a slide whose mask file name (the slide's name + ``.tif``) is too long."""
    return f"rename the slide {slide_id[:40]}… to a shorter name (its mask file is named after it)"


def shape_mismatch(
    mask_file: Path | str, mask_shape: tuple[int, ...], slide: Path, slide_shape: tuple[int, int], fix: str
) -> InputError:
    """The error for a mask whose shape differs from its slide's."""
    return InputError(
        f"{mask_file}: mask shape {tuple(mask_shape)} differs from slide {slide} shape {tuple(slide_shape)}; {fix}"
    )
