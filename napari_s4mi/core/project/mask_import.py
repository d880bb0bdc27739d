"""Importing a folder of masks: match files to slides by name, check shapes and values, stage converted copies,
then swap them in under one manifest save, rolling every mask back when anything fails."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path, PurePosixPath

import numpy as np

from ..errors import InputError
from ..io import SLIDE_SUFFIXES, read_mask, write_mask
from .masks import MaskStore, shape_mismatch

MASK_SUFFIXES = ("_segmentation", "_mask", "")  # searched in this order by import_masks


class MaskImport(MaskStore):
    """``import_masks``: label masks from a folder, all or nothing."""

    def import_masks(
        self, masks_dir: str | os.PathLike[str], mark_annotated: bool = True, overwrite: bool = False
    ) -> int:
        """Import label masks found by name for the project's slides; returns how many were imported.

        For a slide ``<stem>.<ext>`` the mask is ``<stem>_segmentation.*`` (ISIC), ``<stem>_mask.*`` or
        ``<stem>.*`` (any image suffix). When all found masks together hold a single non-zero value that is
        not a class id of the project (e.g. 0/255), it becomes 1; otherwise values are class ids and classes
        are added (``class_k``) when needed. Every mask is validated and staged before anything is replaced,
        and the manifest is saved last, so an error leaves the project as it was. Slides that already have a
        mask are skipped unless ``overwrite`` (a painted mask is never replaced silently).
        """
        masks_dir = Path(masks_dir).expanduser().resolve()
        if not masks_dir.is_dir():
            raise InputError(f"{masks_dir}: no such folder; pass the folder that holds the masks")
        found = self._match_masks(masks_dir, overwrite)
        if not found:
            return 0
        values = self._check_masks(found)
        mapping = _value_mapping(values, len(self.classes))
        staged = self._stage_masks(found, mapping)
        top = max((mapping.get(v, v) for v in values), default=0)
        # mask path -> the previous mask moved aside (None where there was none)
        backups: dict[Path, Path | None] = {}
        try:
            with self._transaction():
                self.classes += [f"class_{k}" for k in range(len(self.classes), top + 1)]
                for slide_id, tmp in staged.items():
                    _swap_in(tmp, self.mask_path(slide_id), backups)
                    if mark_annotated:
                        self.record(slide_id).annotated = True
        except BaseException:
            _roll_back(backups)
            raise
        finally:
            for tmp in staged.values():
                with contextlib.suppress(OSError):
                    tmp.unlink(missing_ok=True)
        for backup in backups.values():
            if backup is not None:
                with contextlib.suppress(OSError):
                    backup.unlink()
        return len(staged)

    def _match_masks(self, masks_dir: Path, overwrite: bool) -> dict[str, Path]:
        """Map slide ids to mask files found by name in ``masks_dir``."""
        by_stem: dict[str, list[Path]] = {}
        for path in sorted(masks_dir.iterdir()):
            if path.is_file() and not path.name.startswith(".") and path.suffix.lower() in SLIDE_SUFFIXES:
                by_stem.setdefault(path.stem, []).append(path)
        found: dict[str, Path] = {}
        for rec in self.slides:
            if self.has_mask(rec.id) and not overwrite:
                continue
            slide = self.slide_path(rec.id).resolve()
            stem = PurePosixPath(rec.id).stem
            for suffix in MASK_SUFFIXES:
                candidates = [p for p in by_stem.get(stem + suffix, []) if p.resolve() != slide]
                if candidates:
                    found[rec.id] = candidates[0]
                    break
        return found

    def _check_masks(self, found: dict[str, Path]) -> set[int]:
        """Read every mask, check its shape against the slide's header; return all values seen."""
        values: set[int] = set()
        for slide_id, path in found.items():
            mask = read_mask(path)
            with self.open_slide(slide_id) as slide:
                shape = slide.shape
            if mask.shape != shape:
                fix = "resize the mask to the slide or fix its name"
                raise shape_mismatch(path, mask.shape, self.slide_path(slide_id), shape, fix)
            values.update(int(v) for v in np.unique(mask))
        return values

    def _stage_masks(self, found: dict[str, Path], mapping: dict[int, int]) -> dict[str, Path]:
        """Write converted masks to temporary files beside their targets; all removed again on error."""
        self.masks_dir.mkdir(parents=True, exist_ok=True)
        staged: dict[str, Path] = {}
        try:
            for slide_id, path in found.items():
                mask = read_mask(path)
                for old, new in mapping.items():
                    mask = np.where(mask == old, np.asarray(new, mask.dtype), mask)
                fd, tmp = tempfile.mkstemp(prefix=".import.", suffix=".tif", dir=self.masks_dir)
                os.close(fd)
                staged[slide_id] = Path(tmp)
                write_mask(tmp, mask)
        except BaseException:
            for tmp in staged.values():
                with contextlib.suppress(OSError):
                    tmp.unlink()
            raise
        return staged


def _value_mapping(values: set[int], n_classes: int) -> dict[int, int]:
    """{v: 1} when the masks are binary 0/v with v not a class id of the project (e.g. 0/255), else {}."""
    nonzero = sorted(v for v in values if v != 0)
    if len(nonzero) == 1 and nonzero[0] >= n_classes:
        return {nonzero[0]: 1}
    return {}


def _swap_in(staged: Path, target: Path, backups: dict[Path, Path | None]) -> None:
    """Move ``staged`` onto ``target``, first moving an existing target aside (recorded in ``backups``)."""
    backup = None
    if target.exists():
        backup = target.with_name(f".{target.name}.{os.getpid()}.bak")
        os.replace(target, backup)
    backups[target] = backup
    os.replace(staged, target)


def _roll_back(backups: dict[Path, Path | None]) -> None:
    """Undo :func:`_swap_in`: restore the previous masks, remove the new ones that replaced nothing."""
    for target, backup in backups.items():
        with contextlib.suppress(OSError):
            if backup is None:
                target.unlink(missing_ok=True)
            else:
                os.replace(backup, target)
