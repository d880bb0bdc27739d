"""Probing files in the slide folder cheaply (their header only): a file that cannot be opened is recorded as
unreadable with the reason instead of becoming a slide to annotate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import InputError
from ..io import open_slide


def unreadable_reason(path: Path, channel_axis: int | None = None) -> str | None:
    """Why ``path`` cannot be opened as a slide (its header is read, no pixels), or None when it can."""
    try:
        with open_slide(path, channel_axis=channel_axis):
            return None
    except InputError as exc:
        text = str(exc)
        prefix = f"{path}: "
        return text[len(prefix) :] if text.startswith(prefix) else text
    except OSError as exc:
        return f"cannot be read ({exc.strerror or type(exc).__name__}); check its permissions"


def unreadable_to_json(unreadable: dict[str, str]) -> list[dict[str, str]]:
    """The manifest's ``unreadable_files`` entries."""
    return [{"id": slide_id, "reason": reason} for slide_id, reason in unreadable.items()]


def unreadable_from_json(items: Any) -> dict[str, str]:
    """``unreadable_files`` from the manifest; malformed entries are dropped (a refresh probes the files again)."""
    if not isinstance(items, list):
        return {}
    return {
        item["id"]: str(item.get("reason", ""))
        for item in items
        if isinstance(item, dict) and isinstance(item.get("id"), str)
    }
