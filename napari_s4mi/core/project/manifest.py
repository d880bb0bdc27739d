"""The project manifest ``s4mi-project.json``: folder names, slide records, and parsing/validating the JSON."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import ProjectError

MANIFEST_NAME = "s4mi-project.json"
FORMAT = "s4mi-project"
VERSION = 1
DEFAULT_PROJECT_DIRNAME = ".s4mi"
MASKS_DIRNAME = "masks"
RUNS_DIRNAME = "runs"
PREDICTIONS_DIRNAME = "predictions"
SPLITS = ("train", "val", "test")
KNOWN_KEYS = frozenset(
    {"format", "version", "slides_dir", "slides_dir_absolute", "classes", "multi_label", "channel_axis"}
    | {"slides", "vanished_slides"}
)


@dataclass
class SlideRecord:
    """A slide of the project: its id (path relative to the slide folder, posix) and annotation state."""

    id: str
    annotated: bool = False
    split: str | None = None
    group: str | None = None


def load_json(path: Path) -> Any:
    """The manifest's JSON; ProjectError when it cannot be read or parsed."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProjectError(
            f"{path}: corrupt project manifest ({type(exc).__name__}: {exc}); restore it or create the project again"
        ) from exc


def check_format(data: Any, manifest: Path) -> None:
    """ProjectError unless ``data`` is an s4mi-project manifest of a version this code reads."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ProjectError(
            f"{manifest}: corrupt project manifest (not an {FORMAT} file); restore it or create the project again"
        )
    version = data.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise ProjectError(
            f"{manifest}: project format version {version!r} is not supported by this napari-s4mi "
            f"(reads up to {VERSION}); upgrade napari-s4mi"
        )


def stored_slides_dir(root: Path, slides_dir: Path) -> str:
    """The slide folder relative to the project root (moving both together keeps working), else absolute."""
    try:
        return Path(os.path.relpath(slides_dir, root)).as_posix()
    except ValueError:  # another drive on Windows
        return str(slides_dir)


def resolve_slides_dir(root: Path, data: dict[str, Any]) -> Path:
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


def validated_classes(classes: Any, where: Path) -> list[str]:
    """The class names as a list; ProjectError unless they are distinct non-empty strings."""
    names = list(classes) if isinstance(classes, (list, tuple)) else None
    if not names or not all(isinstance(c, str) and c for c in names) or len(set(names)) != len(names):
        raise ProjectError(
            f"{where}: classes must be distinct non-empty names, background first (got {classes!r}); fix them"
        )
    return names


def record_from_json(item: Any) -> SlideRecord:
    """A SlideRecord from its manifest entry; ValueError for a bad id or split."""
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
