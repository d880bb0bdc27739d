"""The annotation project on disk: a manifest, label masks and training runs beside untouched slides.

A project folder holds ``s4mi-project.json`` (the manifest), ``masks/`` (one label TIFF per slide) and
``runs/``. The slides stay where they are and are only ever read; the slide folder may be read-only. Every
write is atomic (temporary file, then rename) and the in-memory state is rolled back when a save fails, so an
error leaves the previous manifest and masks intact.

A slide counts as annotated only when the user marks it so: saving a half-painted mask does not label it.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from .errors import InputError, ProjectError
from .io import (
    SLIDE_SUFFIXES,
    Slide,
    _atomic_target,
    as_label_image,
    atomic_write_text,
    list_slides,
    open_slide,
    read_mask,
    write_mask,
)

MANIFEST_NAME = "s4mi-project.json"
FORMAT = "s4mi-project"
VERSION = 1
DEFAULT_PROJECT_DIRNAME = ".s4mi"
MASKS_DIRNAME = "masks"
RUNS_DIRNAME = "runs"
PREDICTIONS_DIRNAME = "predictions"
SPLITS = ("train", "val", "test")
MASK_SUFFIXES = ("_segmentation", "_mask", "")  # searched in this order by import_masks

_ID_COLUMNS = ("id", "image", "slide", "image_id", "slide_id", "filename", "file")
_GROUP_COLUMNS = ("group", "patient", "patient_id", "group_id", "subject")


@dataclass
class SlideRecord:
    """A slide of the project: its id (path relative to the slide folder, posix) and annotation state."""

    id: str
    annotated: bool = False
    split: str | None = None
    group: str | None = None


class Project:
    """An annotation project: slide records, classes, masks and runs under ``root``."""

    def __init__(
        self,
        root: Path,
        slides_dir: Path,
        classes: list[str],
        slides: list[SlideRecord],
        channel_axis: int | None = None,
        multi_label: bool = False,
        vanished: dict[str, SlideRecord] | None = None,
        extra: dict[str, Any] | None = None,
    ):
        self.root = Path(root)
        self.slides_dir = Path(slides_dir)
        self.classes = list(classes)
        self.slides = list(slides)
        self.channel_axis = channel_axis
        self.multi_label = multi_label
        # records of slides gone from the folder, restored if they come back
        self._vanished = dict(vanished or {})
        self._extra = dict(extra or {})  # manifest keys written by newer code, kept as they are

    def __repr__(self) -> str:
        return f"Project({str(self.root)!r}, slides={len(self.slides)}, classes={self.classes})"

    # ----------------------------------------------------------------------------------------- creation

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST_NAME

    @property
    def masks_dir(self) -> Path:
        return self.root / MASKS_DIRNAME

    @property
    def runs_dir(self) -> Path:
        """``<root>/runs``, created on demand."""
        path = self.root / RUNS_DIRNAME
        path.mkdir(parents=True, exist_ok=True)
        return path

    @staticmethod
    def is_project(path: str | os.PathLike[str]) -> bool:
        """True when ``path`` is a folder holding a project manifest."""
        return (Path(path) / MANIFEST_NAME).is_file()

    @classmethod
    def create(
        cls,
        slides_dir: str | os.PathLike[str],
        project_dir: str | os.PathLike[str] | None = None,
        classes: Iterable[str] = ("background", "foreground"),
        channel_axis: int | None = None,
    ) -> Project:
        """Create (or reopen and refresh) the project of a slide folder.

        ``project_dir`` defaults to ``<slides_dir>/.s4mi`` when the slide folder is writable. When a manifest
        already exists there it is opened as is (its classes and channel axis win) and refreshed.
        """
        slides_dir = Path(slides_dir).expanduser().resolve()
        if not slides_dir.is_dir():
            raise ProjectError(f"{slides_dir}: no such folder; pass the folder that holds the slides")
        if not list_slides(slides_dir):
            raise ProjectError(
                f"no PNG/JPEG/BMP/TIFF slides in {slides_dir}; put the slides there or pick another folder"
            )
        root = _default_project_dir(slides_dir) if project_dir is None else _writable_project_dir(project_dir)
        if cls.is_project(root):
            project = cls.open(root)
            if project.slides_dir != slides_dir:
                raise ProjectError(
                    f"{project.manifest_path}: this project belongs to the slides in {project.slides_dir}, "
                    f"not {slides_dir}; pick another project folder"
                )
            return project
        names = _validated_classes(classes, root / MANIFEST_NAME)
        project = cls(root, slides_dir, names, [], channel_axis=channel_axis)
        project.masks_dir.mkdir(parents=True, exist_ok=True)
        project.refresh(save=False)
        project.save()
        return project

    @classmethod
    def open(cls, project_dir: str | os.PathLike[str], refresh: bool = True) -> Project:
        """Open an existing project; ``refresh`` picks up slides added to or removed from the folder."""
        root = Path(project_dir).expanduser().resolve()
        manifest = root / MANIFEST_NAME
        if not manifest.is_file():
            raise ProjectError(f"{root}: not a napari-s4mi project (no {MANIFEST_NAME}); create one first")
        project = cls._from_manifest(root, _load_json(manifest))
        if refresh:
            project.refresh()
        return project

    @classmethod
    def _from_manifest(cls, root: Path, data: dict[str, Any]) -> Project:
        manifest = root / MANIFEST_NAME
        bad = f"{manifest}: corrupt project manifest"
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ProjectError(f"{bad} (not an {FORMAT} file); restore it or create the project again")
        version = data.get("version")
        if not isinstance(version, int) or version > VERSION:
            raise ProjectError(
                f"{manifest}: project format version {version!r} is not supported by this napari-s4mi "
                f"(reads up to {VERSION}); upgrade napari-s4mi"
            )
        try:
            slides_dir = _resolve_slides_dir(root, data)
            classes = _validated_classes(data["classes"], manifest)
            records = [_record_from_json(item) for item in data["slides"]]
            vanished = {r.id: r for r in (_record_from_json(i) for i in data.get("vanished_slides", []))}
            channel_axis = data.get("channel_axis")
            if channel_axis is not None and not isinstance(channel_axis, int):
                raise ValueError("channel_axis must be an integer or null")
            multi_label = bool(data.get("multi_label", False))
        except ProjectError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ProjectError(f"{bad} ({type(exc).__name__}: {exc}); restore it or create it again") from exc
        known = {"format", "version", "slides_dir", "slides_dir_absolute", "classes", "multi_label"}
        known |= {"channel_axis", "slides", "vanished_slides"}
        extra = {k: v for k, v in data.items() if k not in known}
        return cls(root, slides_dir, classes, records, channel_axis, multi_label, vanished, extra)

    # ----------------------------------------------------------------------------------------- saving

    def to_json(self) -> dict[str, Any]:
        """The manifest as a JSON-ready dict."""
        data: dict[str, Any] = {
            "format": FORMAT,
            "version": VERSION,
            "slides_dir": _stored_slides_dir(self.root, self.slides_dir),
            "slides_dir_absolute": str(self.slides_dir),
            "classes": list(self.classes),
            "multi_label": self.multi_label,
            "channel_axis": self.channel_axis,
            "slides": [asdict(r) for r in self.slides],
        }
        if self._vanished:
            data["vanished_slides"] = [asdict(r) for r in self._vanished.values()]
        data.update({k: v for k, v in self._extra.items() if k not in data})
        return data

    def save(self) -> None:
        """Write the manifest atomically."""
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.manifest_path, json.dumps(self.to_json(), indent=2) + "\n")

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """Apply in-memory changes and save them; on any error restore the previous in-memory state."""
        state = copy.deepcopy((self.classes, self.slides, self._vanished, self.channel_axis, self.multi_label))
        try:
            yield
            self.save()
        except BaseException:
            self.classes, self.slides, self._vanished, self.channel_axis, self.multi_label = state
            raise

    # ----------------------------------------------------------------------------------------- slides

    def refresh(self, save: bool = True) -> None:
        """Add slides that appeared in the folder, drop those that vanished (their masks stay on disk).

        A vanished slide's record (annotated flag, split, group) is remembered and restored if it comes back.
        """
        if not self.slides_dir.is_dir():
            raise ProjectError(
                f"{self.slides_dir}: slide folder not found (project {self.root}); "
                f"move it back or edit slides_dir in {self.manifest_path}"
            )
        present = [p.relative_to(self.slides_dir).as_posix() for p in list_slides(self.slides_dir)]
        current = {r.id: r for r in self.slides}
        if list(current) == present:
            return
        with self._transaction() if save else contextlib.nullcontext():
            for gone in set(current) - set(present):
                self._vanished[gone] = current[gone]
            self.slides = [current.get(i) or self._vanished.get(i) or SlideRecord(i) for i in present]
            for slide_id in present:
                self._vanished.pop(slide_id, None)

    @property
    def ids(self) -> list[str]:
        """Ids of all slides, in folder order."""
        return [r.id for r in self.slides]

    def record(self, slide_id: str) -> SlideRecord:
        """The record of a slide; ProjectError for an unknown id."""
        for rec in self.slides:
            if rec.id == slide_id:
                return rec
        raise ProjectError(f"{slide_id}: not a slide of project {self.root}; refresh the project or check the name")

    def slide_path(self, slide_id: str) -> Path:
        """Path of a slide's image file."""
        self.record(slide_id)
        return self.slides_dir / slide_id

    def open_slide(self, slide_id: str) -> Slide:
        """Open a slide lazily with the project's channel axis."""
        return open_slide(self.slide_path(slide_id), channel_axis=self.channel_axis)

    def mask_path(self, slide_id: str) -> Path:
        """``masks/<id with '/' replaced by '__'>.tif``."""
        return self.masks_dir / (slide_id.replace("/", "__") + ".tif")

    def has_mask(self, slide_id: str) -> bool:
        return self.mask_path(slide_id).is_file()

    def read_mask(self, slide_id: str) -> np.ndarray:
        """The slide's saved label mask; ProjectError when none was saved."""
        path = self.mask_path(slide_id)
        if not path.is_file():
            raise ProjectError(f"{slide_id}: no mask saved yet ({path}); paint and save one, or import masks")
        return read_mask(path)

    def save_mask(self, slide_id: str, mask: np.ndarray) -> Path:
        """Save a slide's label mask atomically; the annotated flag is left as it is."""
        mask = self._validated_mask(slide_id, mask, "mask")
        self.masks_dir.mkdir(parents=True, exist_ok=True)
        path = self.mask_path(slide_id)
        write_mask(path, mask)
        return path

    def _validated_mask(self, slide_id: str, mask: np.ndarray, source: str | Path) -> np.ndarray:
        """The mask as a label image of the slide's shape with labels < len(classes); InputError if not."""
        mask = as_label_image(mask, source)
        with self.open_slide(slide_id) as slide:
            shape = slide.shape
        if mask.shape != shape:
            raise _shape_mismatch(source, mask.shape, self.slide_path(slide_id), shape, "paint it at the slide's size")
        top = int(mask.max()) if mask.size else 0
        if top >= len(self.classes):
            raise InputError(
                f"{source}: label {top} but the project has {len(self.classes)} classes {self.classes}; "
                "add classes or relabel the mask"
            )
        return mask

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
        return self.prediction_path(slide_id).is_file()

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
            with _atomic_target(target) as fh:
                tifffile.imwrite(fh, np.asarray(disagreement, dtype=np.float16), compression="zlib", metadata=None)
        return path

    def read_prediction(self, slide_id: str) -> tuple[np.ndarray, np.ndarray | None]:
        """The slide's latest predicted labels and disagreement (None when not saved); ProjectError if none."""
        import tifffile

        path = self.prediction_path(slide_id)
        if not path.is_file():
            raise ProjectError(f"{slide_id}: not predicted yet; run a prediction first")
        target = self.disagreement_path(slide_id)
        disagreement = tifffile.imread(target).astype(np.float32) if target.is_file() else None
        return read_mask(path), disagreement

    def set_annotated(self, slide_id: str, flag: bool = True) -> None:
        """Mark a slide as annotated (its saved mask becomes a label) or not; saves the manifest."""
        self.record(slide_id)
        if flag and not self.has_mask(slide_id):
            raise ProjectError(f"{slide_id}: no mask saved; save the mask before marking the slide annotated")
        with self._transaction():
            self.record(slide_id).annotated = bool(flag)

    def annotated_ids(self, split: str | None = None) -> list[str]:
        """Ids of annotated slides, optionally only those of one split."""
        return [r.id for r in self.slides if r.annotated and (split is None or r.split == split)]

    def unannotated_ids(self) -> list[str]:
        """Ids of slides not (yet) annotated: the unlabeled pool."""
        return [r.id for r in self.slides if not r.annotated]

    # ----------------------------------------------------------------------------------------- import

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
                raise _shape_mismatch(path, mask.shape, self.slide_path(slide_id), shape, fix)
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

    # ----------------------------------------------------------------------------------------- splits

    def assign_splits(
        self,
        val_fraction: float = 0.2,
        test_fraction: float = 0.0,
        seed: int = 0,
        groups: dict[str, str] | None = None,
        overwrite: bool = False,
    ) -> dict[str, int]:
        """Seeded train/val/test split of the annotated slides, by group when groups are known.

        Slides of one group (``groups`` maps slide ids or stems to group names; else the records' groups)
        always share a split. Slides with a split keep it unless ``overwrite``; a group already placed pulls
        its new members into the same split. At least one group stays in train. Returns the count per split.
        """
        if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
            raise ProjectError(
                f"val_fraction={val_fraction} and test_fraction={test_fraction}: each must be in [0, 1) "
                "and their sum below 1"
            )
        with self._transaction():
            annotated = [r for r in self.slides if r.annotated]
            if groups:
                for rec in annotated:
                    rec.group = _lookup_group(groups, rec.id, rec.group)
            if overwrite:
                for rec in annotated:
                    rec.split = None
            _split_groups(annotated, val_fraction, test_fraction, seed)
        return {s: len(self.annotated_ids(s)) for s in SPLITS}


# --------------------------------------------------------------------------------------------- helpers


def _default_project_dir(slides_dir: Path) -> Path:
    """``<slides_dir>/.s4mi`` when it can be written, else ProjectError asking for a project folder."""
    root = slides_dir / DEFAULT_PROJECT_DIRNAME
    read_only = ProjectError(f"{slides_dir} is read-only: pass a writable project folder (--project DIR)")
    if not os.access(slides_dir, os.W_OK | os.X_OK) and not root.is_dir():
        raise read_only
    created = not root.exists()
    try:
        root.mkdir(exist_ok=True)
        _test_write(root)
    except OSError as exc:
        if created:
            with contextlib.suppress(OSError):
                root.rmdir()
        raise read_only from exc
    return root


def _writable_project_dir(project_dir: str | os.PathLike[str]) -> Path:
    root = Path(project_dir).expanduser().resolve()
    try:
        root.mkdir(parents=True, exist_ok=True)
        _test_write(root)
    except OSError as exc:
        raise ProjectError(f"{root}: project folder is not writable ({exc.strerror}); pick another one") from exc
    return root


def _test_write(folder: Path) -> None:
    """Create and delete a hidden temporary file: os.access alone misses read-only mounts and ACLs."""
    if not os.access(folder, os.W_OK):
        raise PermissionError(13, "permission denied", str(folder))
    with tempfile.TemporaryFile(dir=folder, prefix=".s4mi-write-test."):
        pass


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


def _shape_mismatch(
    mask_file: Path | str, mask_shape: tuple[int, ...], slide: Path, slide_shape: tuple[int, int], fix: str
) -> InputError:
    return InputError(
        f"{mask_file}: mask shape {tuple(mask_shape)} differs from slide {slide} shape {tuple(slide_shape)}; {fix}"
    )


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProjectError(
            f"{path}: corrupt project manifest ({type(exc).__name__}: {exc}); restore it or create the project again"
        ) from exc


def _stored_slides_dir(root: Path, slides_dir: Path) -> str:
    """The slide folder relative to the project root (moving both together keeps working), else absolute."""
    try:
        return Path(os.path.relpath(slides_dir, root)).as_posix()
    except ValueError:  # another drive on Windows
        return str(slides_dir)


def _resolve_slides_dir(root: Path, data: dict[str, Any]) -> Path:
    """The stored slide folder: relative to the root first, then the absolute path remembered beside it."""
    stored = data["slides_dir"]
    if not isinstance(stored, str) or not stored:
        raise ValueError("slides_dir must be a non-empty string")
    candidates = [(root / stored).resolve()]
    if isinstance(data.get("slides_dir_absolute"), str):
        candidates.append(Path(data["slides_dir_absolute"]))
    for path in candidates:
        if path.is_dir():
            return path
    return candidates[0]


def _validated_classes(classes: Any, where: Path) -> list[str]:
    names = list(classes) if isinstance(classes, (list, tuple)) else None
    if not names or not all(isinstance(c, str) and c for c in names) or len(set(names)) != len(names):
        raise ProjectError(
            f"{where}: classes must be distinct non-empty names, background first (got {classes!r}); fix them"
        )
    return names


def _record_from_json(item: Any) -> SlideRecord:
    if not isinstance(item, dict) or not isinstance(item.get("id"), str):
        raise ValueError(f"slide entry {item!r} has no id")
    slide_id = item["id"]
    parts = PurePosixPath(slide_id).parts
    if not parts or PurePosixPath(slide_id).is_absolute() or ".." in parts or "\\" in slide_id:
        raise ValueError(f"slide id {slide_id!r} must be a relative path inside the slide folder")
    split = item.get("split")
    if split not in (None, *SPLITS):
        raise ValueError(f"slide {slide_id!r}: split {split!r} is not one of {SPLITS}")
    group = item.get("group")
    return SlideRecord(slide_id, bool(item.get("annotated", False)), split, None if group is None else str(group))


def _value_mapping(values: set[int], n_classes: int) -> dict[int, int]:
    """{v: 1} when the masks are binary 0/v with v not a class id of the project (e.g. 0/255), else {}."""
    nonzero = sorted(v for v in values if v != 0)
    if len(nonzero) == 1 and nonzero[0] >= n_classes:
        return {nonzero[0]: 1}
    return {}


def _lookup_group(groups: dict[str, str], slide_id: str, default: str | None) -> str | None:
    """A slide's group from a table keyed by id, file name or stem."""
    path = PurePosixPath(slide_id)
    for key in (slide_id, path.name, path.stem):
        if key in groups:
            return str(groups[key])
    return default


def _split_groups(records: list[SlideRecord], val_fraction: float, test_fraction: float, seed: int) -> None:
    """Assign splits to records without one, whole groups at a time (see Project.assign_splits)."""
    members: dict[str, list[SlideRecord]] = {}
    for rec in records:
        members.setdefault(rec.group if rec.group is not None else f"\0slide:{rec.id}", []).append(rec)
    counts = dict.fromkeys(SPLITS, 0)
    free: list[str] = []
    for key, recs in members.items():
        placed = [r.split for r in recs if r.split is not None]
        if placed:
            target = max(set(placed), key=placed.count)
            for rec in recs:
                rec.split = rec.split or target
                counts[rec.split] += 1
        else:
            free.append(key)
    total = len(records)
    wanted = {"test": _target(test_fraction, total), "val": _target(val_fraction, total)}
    order = np.random.default_rng(seed).permutation(len(free))
    for pos, idx in enumerate(order):
        key = free[int(idx)]
        size = len(members[key])
        last_free_and_no_train = pos == len(order) - 1 and counts["train"] == 0
        split = "train"
        for name in ("test", "val"):
            if not last_free_and_no_train and counts[name] + size / 2 <= wanted[name]:
                split = name
                break
        for rec in members[key]:
            rec.split = split
        counts[split] += size


def _target(fraction: float, total: int) -> float:
    """Wanted slide count of a split: at least one when the fraction is non-zero and there are 3+ slides."""
    if fraction <= 0:
        return 0.0
    return max(round(fraction * total), 1.0 if total >= 3 else 0.0)


def load_groups_csv(path: str | os.PathLike[str]) -> dict[str, str]:
    """Read slide → group (patient) from a CSV with an id column (id/image/slide) and a group column."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = {(name or "").strip().lower(): name for name in reader.fieldnames or []}
            id_col = next((header[c] for c in _ID_COLUMNS if c in header), None)
            group_col = next((header[c] for c in _GROUP_COLUMNS if c in header), None)
            if id_col is None or group_col is None:
                raise InputError(
                    f"{path}: needs an id column ({'/'.join(_ID_COLUMNS[:3])}) and a group column "
                    f"({'/'.join(_GROUP_COLUMNS[:2])}); found {list(header)}; rename the header"
                )
            rows = [(row.get(id_col), row.get(group_col)) for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: cannot read the groups CSV ({type(exc).__name__}); check the file") from exc
    return {str(i).strip(): str(g).strip() for i, g in rows if i and str(i).strip() and g and str(g).strip()}
