"""The Project class's core: where a project lives, creating and opening it, its slide records, and saving the
manifest atomically with the in-memory state rolled back when a save fails."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from ..atomic import atomic_write_text
from ..errors import ProjectError
from ..io import Slide, list_slides, open_slide
from .manifest import (
    DEFAULT_PROJECT_DIRNAME,
    FORMAT,
    KNOWN_KEYS,
    MANIFEST_NAME,
    MASKS_DIRNAME,
    RUNS_DIRNAME,
    VERSION,
    LabelSchema,
    SlideRecord,
    check_format,
    check_record_labels,
    label_schema_from_json,
    load_json,
    record_from_json,
    record_to_json,
    resolve_slides_dir,
    stored_slides_dir,
    validated_classes,
)
from .probe import unreadable_from_json, unreadable_reason, unreadable_to_json

_P = TypeVar("_P", bound="ProjectBase")


class ProjectBase:
    """Slide records, classes and the manifest of a project under ``root``; masks, splits and class labels come in
    subclasses. ``classes`` are the segmentation classes; ``label_schema`` the image-classification labels."""

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
        label_schema: LabelSchema | None = None,
        unreadable: dict[str, str] | None = None,
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
        self.label_schema = label_schema or LabelSchema()
        self._unreadable = dict(unreadable or {})  # files in the slide folder that cannot be opened -> why

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
        cls: type[_P],
        slides_dir: str | os.PathLike[str],
        project_dir: str | os.PathLike[str] | None = None,
        classes: Iterable[str] = ("background", "foreground"),
        channel_axis: int | None = None,
    ) -> _P:
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
        names = validated_classes(classes, root / MANIFEST_NAME)
        project = cls(root, slides_dir, names, [], channel_axis=channel_axis)
        project.masks_dir.mkdir(parents=True, exist_ok=True)
        project.refresh(save=False)
        project.save()
        return project

    @classmethod
    def open(cls: type[_P], project_dir: str | os.PathLike[str], refresh: bool = True) -> _P:
        """Open an existing project; ``refresh`` picks up slides added to or removed from the folder."""
        root = Path(project_dir).expanduser().resolve()
        manifest = root / MANIFEST_NAME
        if not manifest.is_file():
            raise ProjectError(f"{root}: not a napari-s4mi project (no {MANIFEST_NAME}); create one first")
        project = cls._from_manifest(root, load_json(manifest))
        if refresh:
            project.refresh()
        return project

    @classmethod
    def _from_manifest(cls: type[_P], root: Path, data: dict[str, Any]) -> _P:
        manifest = root / MANIFEST_NAME
        check_format(data, manifest)
        try:
            slides_dir = resolve_slides_dir(root, data)
            classes = validated_classes(data["classes"], manifest)
            records = [record_from_json(item) for item in data["slides"]]
            vanished = {r.id: r for r in (record_from_json(i) for i in data.get("vanished_slides", []))}
            channel_axis = data.get("channel_axis")
            if channel_axis is not None and not isinstance(channel_axis, int):
                raise ValueError("channel_axis must be an integer or null")
            multi_label = bool(data.get("multi_label", False))
            label_schema = label_schema_from_json(data)
            for rec in [*records, *vanished.values()]:
                check_record_labels(rec, label_schema)
        except ProjectError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ProjectError(
                f"{manifest}: corrupt project manifest ({type(exc).__name__}: {exc}); restore it, or rebuild it "
                f"from the slides and masks: s4mi project rebuild --project {root}"
            ) from exc
        extra = {k: v for k, v in data.items() if k not in KNOWN_KEYS}
        unreadable = unreadable_from_json(data.get("unreadable_files"))
        return cls(
            root, slides_dir, classes, records, channel_axis, multi_label, vanished, extra, label_schema, unreadable
        )

    # ----------------------------------------------------------------------------------------- saving

    def to_json(self) -> dict[str, Any]:
        """The manifest as a JSON-ready dict."""
        data: dict[str, Any] = {
            "format": FORMAT,
            "version": VERSION,
            "slides_dir": stored_slides_dir(self.root, self.slides_dir),
            "slides_dir_absolute": str(self.slides_dir),
            "classes": list(self.classes),
            "multi_label": self.multi_label,
            "channel_axis": self.channel_axis,
            "slides": [record_to_json(r) for r in self.slides],
        }
        if self._vanished:
            data["vanished_slides"] = [record_to_json(r) for r in self._vanished.values()]
        if self.label_schema.classes:
            data["label_classes"] = list(self.label_schema.classes)
            data["label_mode"] = self.label_schema.mode
            data["none_class"] = self.label_schema.none_class
        if self._unreadable:
            data["unreadable_files"] = unreadable_to_json(self._unreadable)
        data.update({k: v for k, v in self._extra.items() if k not in data})
        return data

    def save(self) -> None:
        """Write the manifest atomically."""
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.manifest_path, json.dumps(self.to_json(), indent=2) + "\n")

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """Apply in-memory changes and save them; on any error restore the previous in-memory state."""
        names = ("classes", "slides", "_vanished", "channel_axis", "multi_label", "label_schema", "_unreadable")
        state = copy.deepcopy([getattr(self, name) for name in names])
        try:
            yield
            self.save()
        except BaseException:
            for name, value in zip(names, state, strict=True):
                setattr(self, name, value)
            raise

    # ----------------------------------------------------------------------------------------- slides

    def refresh(self, save: bool = True) -> None:
        """Add slides that appeared in the folder, drop those that vanished (their masks stay on disk).

        A vanished slide's record (annotated flag, split, group) is remembered and restored if it comes back.
        New files (and those recorded as unreadable) are probed by reading their header: one that cannot be
        opened is listed in ``unreadable`` with the reason, not as a slide. The manifest is saved only on change.
        """
        if not self.slides_dir.is_dir():
            raise ProjectError(
                f"{self.slides_dir}: slide folder not found (project {self.root}); "
                f"move it back or edit slides_dir in {self.manifest_path}"
            )
        files = [p.relative_to(self.slides_dir).as_posix() for p in list_slides(self.slides_dir)]
        current = {r.id: r for r in self.slides}
        if list(current) == files and not self._unreadable:
            return
        unreadable: dict[str, str] = {}
        for slide_id in files:
            if slide_id not in current:
                reason = unreadable_reason(self.slides_dir / slide_id, self.channel_axis)
                if reason is not None:
                    unreadable[slide_id] = reason
        present = [i for i in files if i not in unreadable]
        if list(current) == present and unreadable == self._unreadable:
            return
        with self._transaction() if save else contextlib.nullcontext():
            for gone in set(current) - set(present):
                self._vanished[gone] = current[gone]
            self.slides = [current.get(i) or self._vanished.get(i) or SlideRecord(i) for i in present]
            for slide_id in present:
                self._vanished.pop(slide_id, None)
            self._unreadable = unreadable

    @property
    def ids(self) -> list[str]:
        """Ids of all slides, in folder order (files that cannot be opened are not slides: see ``unreadable``)."""
        return [r.id for r in self.slides]

    @property
    def unreadable(self) -> dict[str, str]:
        """Files in the slide folder that cannot be opened as slides (path relative to it -> the reason)."""
        return dict(self._unreadable)

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

    def annotated_ids(self, split: str | None = None) -> list[str]:
        """Ids of annotated slides, optionally only those of one split."""
        return [r.id for r in self.slides if r.annotated and (split is None or r.split == split)]

    def unannotated_ids(self) -> list[str]:
        """Ids of slides not (yet) annotated: the unlabeled pool."""
        return [r.id for r in self.slides if not r.annotated]


# --------------------------------------------------------------------------------------------- project folder


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
