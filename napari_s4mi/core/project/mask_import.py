"""Importing a folder of masks: match files to slides by name, check them (lossless, shape, values), stage the
converted masks that are new or changed, then swap them in under one manifest save, rolling every mask back
when anything fails. The masks replaced stay beside the new ones until the import has succeeded."""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from ..errors import InputError
from ..io import SLIDE_SUFFIXES, read_mask, write_mask
from ..names import check_name_fits
from .mask_values import (
    added_classes,
    auto_mapping,
    check_mask_values,
    parse_mask_values,
    refuse_lossy,
)
from .masks import MaskStore, mask_name_fix, shape_mismatch

MASK_SUFFIXES = ("_segmentation", "_mask", "")  # searched in this order by import_masks


@dataclass(frozen=True)
class MaskImportSummary:
    """What an import did, by slide id: masks added, changed, unchanged, kept (not replaced), empty ones."""

    folder: Path
    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()  # slides that have a mask, left as they were (no ``replace``)
    unmatched: int = 0  # image files in the folder that are no slide's mask
    empty: tuple[str, ...] = ()  # masks read (added, changed, unchanged) that hold background only
    classes_added: tuple[str, ...] = ()

    @property
    def imported(self) -> int:
        """Masks written: added plus changed."""
        return len(self.added) + len(self.changed)

    def __str__(self) -> str:
        text = f"masks from {self.folder}: {len(self.added)} added, {len(self.changed)} changed, "
        text += f"{len(self.unchanged)} unchanged"
        if self.empty:
            text += f" ({len(self.empty)} of them empty: background only)"
        if self.kept:
            text += f"; {len(self.kept)} kept as they were (their slides have a mask; --replace updates them)"
        if self.unmatched:
            text += f"; {self.unmatched} files match no slide"
        if self.classes_added:
            text += f"; classes added: {', '.join(self.classes_added)}"
        return text

    def warnings(self) -> list[str]:
        """One line about empty (background-only) masks, when there are any."""
        read = len(self.added) + len(self.changed) + len(self.unchanged)
        if not self.empty:
            return []
        names = ", ".join(self.empty[:3]) + (", …" if len(self.empty) > 3 else "")
        if len(self.empty) == read:
            return [
                f"all {read} masks from {self.folder} are empty (background only): a network trained on them "
                "learns background alone; check the files or map their values (--mask-values)"
            ]
        return [f"{len(self.empty)} of {read} masks are empty (background only): {names}"]


class MaskImport(MaskStore):
    """``import_masks``: label masks from a folder, all or nothing."""

    def import_masks(
        self,
        masks_dir: str | os.PathLike[str],
        mark_annotated: bool = True,
        overwrite: bool = False,
        *,
        replace: bool = False,
        mask_values: str | dict[int, int] | None = None,
    ) -> MaskImportSummary:
        """Import label masks found by name for the project's slides.

        For a slide ``<stem>.<ext>`` the mask is ``<stem>_segmentation.*`` (ISIC), ``<stem>_mask.*`` or
        ``<stem>.*`` (PNG, BMP or TIFF; JPEG masks are refused as lossy). ``mask_values`` maps mask values to
        class ids (``{255: 1}`` or ``"255:1,3:0"``); class ids above the project's add classes (``class_k``).
        Without it, masks that are all 0/v with v not a class id (e.g. 0/255) get v → 1; any other value that is
        not a class id is an InputError naming the file, the values and the fix. Slides that already have a
        mask keep it unless ``replace`` (``overwrite`` is the older name): then only masks that differ are
        written. Every mask is checked and staged before anything is replaced, the replaced masks stay aside
        until the manifest is saved, and an error leaves the project as it was.
        """
        replace = replace or overwrite
        explicit = parse_mask_values(mask_values)
        masks_dir = Path(masks_dir).expanduser().resolve()
        if not masks_dir.is_dir():
            raise InputError(f"{masks_dir}: no such folder; pass the folder that holds the masks")
        matched, unmatched = self._match_masks(masks_dir)
        kept = tuple(i for i in matched if self.has_mask(i) and not replace)
        todo = {i: path for i, path in matched.items() if i not in kept}
        n_added = added_classes(explicit, len(self.classes))
        values = self._check_masks(todo)
        mapping = explicit or auto_mapping(set().union(*values.values()), len(self.classes))
        check_mask_values(values, mapping, self.classes, n_added)
        new_classes = tuple(f"class_{k}" for k in range(len(self.classes), len(self.classes) + n_added))
        staged, unchanged, empty = self._stage_masks(todo, mapping)
        summary = MaskImportSummary(
            masks_dir,
            added=tuple(i for i in staged if not self.has_mask(i)),
            changed=tuple(i for i in staged if self.has_mask(i)),
            unchanged=unchanged,
            kept=kept,
            unmatched=unmatched,
            empty=empty,
            classes_added=new_classes if todo else (),
        )
        if not todo:
            return summary
        backups: dict[Path, Path | None] = {}  # mask path -> the previous mask moved aside (None: there was none)
        try:
            with self._transaction():
                self.classes += list(summary.classes_added)
                for slide_id, tmp in staged.items():
                    _swap_in(tmp, self.mask_path(slide_id), backups)
                if mark_annotated:
                    for slide_id in todo:
                        self.record(slide_id).annotated = True
        except BaseException:
            _roll_back(backups)
            raise
        finally:
            _remove(staged.values())
        _remove(b for b in backups.values() if b is not None)
        return summary

    def _match_masks(self, masks_dir: Path) -> tuple[dict[str, Path], int]:
        """Slide id -> its mask file found by name in ``masks_dir``; and how many image files matched no slide."""
        by_stem: dict[str, list[Path]] = {}
        for path in sorted(masks_dir.iterdir()):
            if path.is_file() and not path.name.startswith(".") and path.suffix.lower() in SLIDE_SUFFIXES:
                by_stem.setdefault(path.stem, []).append(path)
        found: dict[str, Path] = {}
        for rec in self.slides:
            slide = self.slide_path(rec.id).resolve()
            stem = PurePosixPath(rec.id).stem
            for suffix in MASK_SUFFIXES:
                candidates = [p for p in by_stem.get(stem + suffix, []) if p.resolve() != slide]
                if candidates:
                    found[rec.id] = candidates[0]
                    break
        return found, sum(len(paths) for paths in by_stem.values()) - len(found)

    def _check_masks(self, found: dict[str, Path]) -> dict[Path, set[int]]:
        """Check every mask (lossless, its name fits, shape of the slide); return the values of each file."""
        values: dict[Path, set[int]] = {}
        for slide_id, path in found.items():
            check_name_fits(self.mask_path(slide_id), mask_name_fix(slide_id))
            refuse_lossy(path)
            mask = read_mask(path)
            with self.open_slide(slide_id) as slide:
                shape = slide.shape
            if mask.shape != shape:
                fix = "resize the mask to the slide or fix its name"
                raise shape_mismatch(path, mask.shape, self.slide_path(slide_id), shape, fix)
            values[path] = {int(v) for v in np.unique(mask)}
        return values

    def _stage_masks(
        self, found: dict[str, Path], mapping: dict[int, int]
    ) -> tuple[dict[str, Path], tuple[str, ...], tuple[str, ...]]:
        """Write the converted masks that are new or differ from the saved ones to temporary files beside their
        targets (all removed again on error); returns them, the unchanged slide ids and the empty ones."""
        self.masks_dir.mkdir(parents=True, exist_ok=True)
        staged: dict[str, Path] = {}
        unchanged: list[str] = []
        empty: list[str] = []
        try:
            for slide_id, path in found.items():
                mask = apply_mapping(read_mask(path), mapping)
                if not mask.any():
                    empty.append(slide_id)
                if self._same_as_saved(slide_id, mask):
                    unchanged.append(slide_id)
                    continue
                fd, tmp = tempfile.mkstemp(prefix=".import.", suffix=".tif", dir=self.masks_dir)
                os.close(fd)
                staged[slide_id] = Path(tmp)
                write_mask(tmp, mask)
        except BaseException:
            _remove(staged.values())
            raise
        return staged, tuple(unchanged), tuple(empty)

    def _same_as_saved(self, slide_id: str, mask: np.ndarray) -> bool:
        """True when the slide's saved mask holds exactly ``mask`` (an unreadable saved mask differs)."""
        if not self.has_mask(slide_id):
            return False
        try:
            return bool(np.array_equal(self.read_mask(slide_id), mask))
        except InputError:
            return False


def apply_mapping(mask: np.ndarray, mapping: dict[int, int]) -> np.ndarray:
    """``mask`` with each value v replaced by ``mapping[v]`` (all at once, so 1:2,2:1 swaps)."""
    if not mapping:
        return mask
    top = max(int(mask.max()) if mask.size else 0, max(mapping))
    table = np.arange(top + 1, dtype=np.uint32)
    for value, target in mapping.items():
        table[value] = target
    out = table[mask]
    return out.astype(np.uint8 if int(out.max(initial=0)) < 256 else np.uint16)


def _swap_in(staged: Path, target: Path, backups: dict[Path, Path | None]) -> None:
    """Move ``staged`` onto ``target``, first moving an existing target aside (recorded in ``backups``)."""
    backup = None
    if target.exists():
        fd, name = tempfile.mkstemp(prefix=".replaced.", suffix=".bak", dir=target.parent)
        os.close(fd)
        backup = Path(name)
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


def _remove(paths) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            Path(path).unlink(missing_ok=True)
