"""What can still be read from a damaged manifest: classes, class labels, the slide folder and the slide records,
from the JSON when it parses, else field by field from its text (the manifest is written one field a line)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ProjectError
from .manifest import (
    KNOWN_KEYS,
    LabelSchema,
    SlideRecord,
    check_record_labels,
    record_from_json,
    resolve_slides_dir,
    validated_classes,
    validated_label_schema,
)

_STRING = r'"(?:[^"\\]|\\.)*"'
_FIELDS = {
    "classes": r"\[[^\]]*\]",
    "label_classes": r"\[[^\]]*\]",
    "label_mode": _STRING,
    "none_class": rf"null|{_STRING}",
    "slides_dir": _STRING,
    "slides_dir_absolute": _STRING,
    "channel_axis": r"null|-?\d+",
    "multi_label": r"true|false",
}
_FLAT_OBJECT = re.compile(r"\{[^{}]*\}")


@dataclass
class Salvage:
    """The readable parts of a manifest (empty when nothing could be read)."""

    parsed: bool = False  # the whole file was valid JSON
    classes: list[str] | None = None
    slides_dir: Path | None = None
    channel_axis: int | None = None
    multi_label: bool = False
    label_schema: LabelSchema = field(default_factory=LabelSchema)
    records: dict[str, SlideRecord] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def salvage_manifest(path: Path) -> Salvage:
    """Read what can be read of the manifest at ``path`` (missing or unreadable: nothing)."""
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except OSError:
        return Salvage()
    try:
        data = json.loads(text)
        parsed = isinstance(data, dict)
    except json.JSONDecodeError:
        data, parsed = {}, False
    if not parsed:
        data = _fields_from_text(text)
        items = [item for item in _objects_from_text(text) if "annotated" in item]
    else:
        items = [*_list(data.get("slides")), *_list(data.get("vanished_slides"))]
    out = Salvage(parsed=parsed)
    if parsed:
        out.extra = {k: v for k, v in data.items() if k not in KNOWN_KEYS}
    out.classes = _try(lambda: validated_classes(data["classes"], path))
    out.slides_dir = _try(lambda: resolve_slides_dir(path.parent, data))
    axis = data.get("channel_axis")
    out.channel_axis = axis if isinstance(axis, int) and not isinstance(axis, bool) else None
    out.multi_label = data.get("multi_label") is True
    schema = _try(
        lambda: validated_label_schema(data["label_classes"], data.get("label_mode", "single"), data.get("none_class"))
    )
    out.label_schema = schema or _schema_from_records(items)
    for item in items:
        rec = _try(lambda item=item: record_from_json(item))
        if rec is None or rec.id in out.records:
            continue
        if _try(lambda rec=rec: check_record_labels(rec, out.label_schema) or True) is None:
            rec.labeled, rec.labels = False, []
        out.records[rec.id] = rec
    return out


def _schema_from_records(items: list[Any]) -> LabelSchema:
    """Label classes lost with the end of the file: the class names the records use, in order of appearance;
    single-label when every labeled record has one."""
    labels = [item.get("labels") for item in items if isinstance(item, dict) and item.get("labeled") is True]
    labels = [names for names in labels if isinstance(names, list) and all(isinstance(n, str) for n in names)]
    classes = list(dict.fromkeys(name for names in labels for name in names))
    mode = "single" if all(len(names) == 1 for names in labels) else "multi"
    return _try(lambda: validated_label_schema(classes, mode)) or LabelSchema()


def _fields_from_text(text: str) -> dict[str, Any]:
    """The top-level fields found in a manifest that is not valid JSON any more."""
    found: dict[str, Any] = {}
    for name, pattern in _FIELDS.items():
        match = re.search(rf'"{name}"\s*:\s*({pattern})', text)
        if match:
            value = _try(lambda match=match: json.loads(match[1]))
            if value is not None or match[1] == "null":
                found[name] = value
    return found


def _objects_from_text(text: str) -> list[dict[str, Any]]:
    """Every flat JSON object in the text that still parses (the slide records of a truncated manifest)."""
    objects = []
    for match in _FLAT_OBJECT.finditer(text):
        item = _try(lambda match=match: json.loads(match[0]))
        if isinstance(item, dict):
            objects.append(item)
    return objects


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _try(read):
    """``read()``, or None when it fails on bad data."""
    try:
        return read()
    except (KeyError, TypeError, ValueError, AttributeError, ProjectError, json.JSONDecodeError):
        return None
