"""Which files are slides: the image suffixes, listing a slide folder, recognising a TIFF by its header."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import InputError

SLIDE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
TIFF_SUFFIXES = (".tif", ".tiff")


def list_slides(folder: str | os.PathLike[str]) -> list[Path]:
    """Image files directly in ``folder`` (not recursive), sorted by name, hidden files skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder; pass the folder that holds the slides")
    found = [
        p for p in folder.iterdir() if not p.name.startswith(".") and p.suffix.lower() in SLIDE_SUFFIXES and p.is_file()
    ]
    return sorted(found, key=lambda p: p.name)


def is_tiff(path: Path) -> bool:
    """True when the file starts with a (Big)TIFF signature, whatever its suffix."""
    with open(path, "rb") as fh:
        return fh.read(4) in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
