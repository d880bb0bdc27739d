"""The project manifest ``s4mi-project.json``: folder names, slide records, and parsing/validating the JSON.

Class labels (image classification) are their own keys beside the segmentation ``classes``: ``label_classes``,
``label_mode`` ('single' or 'multi'), ``none_class`` (single-label: the class of rows with no positive column),
and per slide ``labeled`` and ``labels``. They are written only when used, and a manifest without them opens
as a project without class labels.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
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
LABEL_MODES = ("single", "multi")
KNOWN_KEYS = frozenset(
    {"format", "version", "slides_dir", "slides_dir_absolute", "classes", "multi_label", "channel_axis"}
    | {"slides", "vanished_slides", "label_classes", "label_mode", "none_class", "unreadable_files"}
)


@dataclass
class SlideRecord:
    """A slide of the project: its id (path relative to the slide folder, posix), annotation and label state.

    ``annotated``: its saved mask is a segmentation label. ``labeled``: ``labels`` are its class labels (one in
    single-label mode; any number, none included, in multi-label mode).
    """

    id: str
    annotated: bool = False
    split: str | None = None
    group: str | None = None
    labeled: bool = False
    labels: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LabelSchema:
    """The class labels of a project: class names, 'single' or 'multi' label mode, the optional none class."""

    classes: tuple[str, ...] = ()
    mode: str = "single"
    none_class: str | None = None


def validated_label_schema(classes: Any, mode: Any = "single", none_class: Any = None) -> LabelSchema:
    """A LabelSchema; ValueError (one line, with the fix) unless the names and mode are consistent."""
    names = list(classes) if isinstance(classes, (list, tuple)) else None
    if names is None or not all(isinstance(c, str) and c.strip() == c and c for c in names):
        raise ValueError(f"label classes must be a list of non-empty names without outer spaces (got {classes!r})")
    if len(set(names)) != len(names):
        twice = sorted({c for c in names if names.count(c) > 1})
        raise ValueError(f"label class {twice[0]!r} is listed twice; give each class once")
    if any(";" in c for c in names):
        raise ValueError(f"label class names cannot contain ';' (got {[c for c in names if ';' in c][0]!r}); rename it")
    if mode not in LABEL_MODES:
        raise ValueError(f"label mode {mode!r} is not one of {LABEL_MODES}")
    if none_class is not None:
        if mode != "single":
            raise ValueError(
                "a none class only applies to single-label mode; drop it (multi-label rows may be all zero)"
            )
        if none_class not in names:
            raise ValueError(f"none class {none_class!r} is not one of the label classes {names}; add it or drop it")
    return LabelSchema(tuple(names), mode, none_class)


def label_schema_from_json(data: dict[str, Any]) -> LabelSchema:
    """The manifest's label schema (empty when the keys are absent); ValueError when inconsistent."""
    return validated_label_schema(
        data.get("label_classes", []), data.get("label_mode", "single"), data.get("none_class")
    )


def check_record_labels(rec: SlideRecord, schema: LabelSchema) -> None:
    """ValueError unless a record's labels are label classes and fit the mode."""
    unknown = [name for name in rec.labels if name not in schema.classes]
    if unknown:
        raise ValueError(
            f"slide {rec.id!r}: label {unknown[0]!r} is not one of the label classes {list(schema.classes)}"
        )
    if rec.labeled and schema.mode == "single" and len(rec.labels) != 1:
        raise ValueError(f"slide {rec.id!r}: {len(rec.labels)} labels in single-label mode (needs one)")
    if not rec.labeled and rec.labels:
        raise ValueError(f"slide {rec.id!r}: labels {rec.labels} but not labeled")


def record_to_json(rec: SlideRecord) -> dict[str, Any]:
    """A record's manifest entry; the label fields only for slides that have class labels."""
    data = asdict(rec)
    if not rec.labeled and not rec.labels:
        del data["labeled"], data["labels"]
    return data


def load_json(path: Path) -> Any:
    """The manifest's JSON; ProjectError when it cannot be read or parsed."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProjectError(
            f"{path}: corrupt project manifest ({type(exc).__name__}: {exc}); restore it, or rebuild it from the "
            f"slides and masks: s4mi project rebuild --project {path.parent}"
        ) from exc


def check_format(data: Any, manifest: Path) -> None:
    """ProjectError unless ``data`` is an s4mi-project manifest of a version this code reads."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ProjectError(
            f"{manifest}: corrupt project manifest (not an {FORMAT} file); restore it, or rebuild it from the "
            f"slides and masks: s4mi project rebuild --project {manifest.parent}"
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
    labels = item.get("labels", [])
    if not isinstance(labels, list) or not all(isinstance(name, str) for name in labels):
        raise ValueError(f"slide {slide_id!r}: labels {labels!r} must be a list of class names")
    return SlideRecord(
        slide_id,
        bool(item.get("annotated", False)),
        split,
        None if group is None else str(group),
        bool(item.get("labeled", False)),
        list(labels),
    )
