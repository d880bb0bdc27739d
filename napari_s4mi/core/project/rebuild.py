"""Rebuilding a project's manifest from the slides and the masks on disk (after it was lost, damaged, or created
again over an annotated project): mask files are kept, slides with a readable mask file are marked annotated,
what the old manifest still tells (classes, class labels, splits, groups) is kept, and the old manifest is
kept aside as ``s4mi-project.json.corrupt-<timestamp>`` (``.before-rebuild-<timestamp>`` when it was valid)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..atomic import atomic_write_bytes
from ..errors import InputError, ProjectError
from ..io import list_slides
from .base import ProjectBase
from .manifest import DEFAULT_PROJECT_DIRNAME, MANIFEST_NAME
from .masks import MaskStore
from .salvage import Salvage, salvage_manifest

if TYPE_CHECKING:
    from . import Project


@dataclass(frozen=True)
class RebuildSummary:
    """What a rebuild found and kept."""

    manifest: Path
    kept_aside: Path | None
    slides: int
    annotated: int
    recovered: int  # slides whose record (split, group, class labels) came from the old manifest
    labeled: int
    unreadable: int
    bad_masks: tuple[str, ...] = ()  # mask files that cannot be read: their slides stay unannotated
    orphan_masks: int = 0  # mask files of no slide in the folder, left where they are

    def __str__(self) -> str:
        text = f"rebuilt {self.manifest}: {self.slides} slides, {self.annotated} annotated (they have a mask file)"
        text += f", {self.recovered} records recovered (split, group, class labels)"
        if self.labeled:
            text += f", {self.labeled} with class labels"
        if self.unreadable:
            text += f", {self.unreadable} unreadable files"
        if self.bad_masks:
            text += f"; {len(self.bad_masks)} unreadable mask files left unannotated ({', '.join(self.bad_masks[:3])})"
        if self.orphan_masks:
            text += f"; {self.orphan_masks} mask files of no present slide kept"
        if self.kept_aside is not None:
            text += f"; the old manifest is kept as {self.kept_aside.name}"
        return text


def rebuild_project(
    project_dir: str | os.PathLike[str], slides_dir: str | os.PathLike[str] | None = None
) -> tuple[Project, RebuildSummary]:
    """Write a new manifest for the project in ``project_dir`` from its slides and masks; returns the project.

    ``slides_dir`` defaults to the one the old manifest names, else the parent of a ``.s4mi`` project folder.
    Nothing but the manifest (and its copy kept aside) is written; an error leaves both as they were.
    """
    from . import Project  # the package joins the mixins; imported here to keep the import order simple

    root = Path(project_dir).expanduser().resolve()
    if not root.is_dir():
        raise ProjectError(f"{root}: no such project folder; pass the folder that holds {MANIFEST_NAME} and masks/")
    manifest = root / MANIFEST_NAME
    old = salvage_manifest(manifest)
    slides = _slides_dir(root, slides_dir, old)
    project = Project(
        root,
        slides,
        old.classes or ["background", "foreground"],
        [],
        old.channel_axis,
        old.multi_label,
        vanished=dict(old.records),
        extra=old.extra,
        label_schema=old.label_schema,
    )
    project.refresh(save=False)
    bad_masks = _mark_annotated(project)
    summary = RebuildSummary(
        manifest,
        None,
        len(project.slides),
        len(project.annotated_ids()),
        sum(1 for i in project.ids if i in old.records),
        sum(1 for r in project.slides if r.labeled),
        len(project.unreadable),
        tuple(bad_masks),
        _orphan_masks(project),
    )
    aside = _keep_aside(manifest, corrupt=not _opens(root)) if manifest.exists() else None
    try:
        project.save()
    except BaseException:
        if aside is not None:
            with contextlib.suppress(OSError):
                aside.unlink()
        raise
    return project, dataclasses.replace(summary, kept_aside=aside)


def _slides_dir(root: Path, given: str | os.PathLike[str] | None, old: Salvage) -> Path:
    """The slide folder: given, else the old manifest's, else the parent of ``<slides>/.s4mi``."""
    if given is not None:
        folder = Path(given).expanduser().resolve()
    elif old.slides_dir is not None and old.slides_dir.is_dir():
        folder = old.slides_dir
    elif root.name == DEFAULT_PROJECT_DIRNAME:
        folder = root.parent
    else:
        raise ProjectError(
            f"{root}: the slide folder is not known from the manifest; pass it: "
            f"s4mi project rebuild --project {root} --images DIR"
        )
    if not folder.is_dir() or not list_slides(folder):
        raise ProjectError(f"{folder}: no PNG/JPEG/BMP/TIFF slides there; pass the slide folder with --images DIR")
    return folder


def _mark_annotated(project: MaskStore) -> list[str]:
    """Mark slides annotated exactly when they have a readable mask file (classes grow to its labels); returns the
    slides whose mask file cannot be read."""
    bad: list[str] = []
    for rec in project.slides:
        rec.annotated = False
        if not project.has_mask(rec.id):
            continue
        try:
            mask = project.read_mask(rec.id)
        except InputError:
            bad.append(rec.id)
            continue
        top = int(mask.max()) if mask.size else 0
        project.classes += [f"class_{k}" for k in range(len(project.classes), top + 1)]
        rec.annotated = True
    return bad


def _orphan_masks(project: MaskStore) -> int:
    """Mask files that belong to no slide in the folder (kept on disk, as the project always does)."""
    if not project.masks_dir.is_dir():
        return 0
    known = {project.mask_path(i).name for i in project.ids}
    return sum(1 for p in project.masks_dir.glob("*.tif") if not p.name.startswith(".") and p.name not in known)


def _opens(root: Path) -> bool:
    """True when the current manifest opens as it is."""
    try:
        ProjectBase.open(root, refresh=False)
    except ProjectError:
        return False
    return True


def _keep_aside(manifest: Path, corrupt: bool) -> Path:
    """Copy the manifest to ``<name>.corrupt-<timestamp>`` (or ``.before-rebuild-``) beside it."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    kind = "corrupt" if corrupt else "before-rebuild"
    aside = manifest.with_name(f"{manifest.name}.{kind}-{stamp}")
    count = 1
    while aside.exists():
        count += 1
        aside = manifest.with_name(f"{manifest.name}.{kind}-{stamp}-{count}")
    atomic_write_bytes(aside, manifest.read_bytes())
    return aside
