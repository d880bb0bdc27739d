"""File names of a folder's predictions: one base name per slide, shared by no other slide's outputs, and never
the name of an input (``s4mi predict --out`` may be the slide folder itself as long as nothing collides)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from .errors import InputError


def output_names(paths: Sequence[Path], suffixes: Sequence[str]) -> dict[Path, str]:
    """The base name of each slide's outputs ``<base><suffix>``: its stem, or its full file name where two slides'
    outputs would share a name (``a.jpg`` and ``a.png`` give ``a.jpg.png`` and ``a.png.png``), numbered as a last
    resort. Names are compared case-insensitively (as macOS and Windows file systems do)."""
    names = {path: path.stem for path in paths}
    clashing = _clashing(names, suffixes)
    for path in clashing:
        names[path] = path.name
    for round_ in range(1, 4):
        clashing = _clashing(names, suffixes)
        if not clashing:
            break
        for index, path in enumerate(sorted(clashing), start=1):
            names[path] = f"{path.name}-{round_}.{index}"
    return names


def _clashing(names: dict[Path, str], suffixes: Sequence[str]) -> list[Path]:
    owners: dict[str, set[Path]] = {}
    for path, base in names.items():
        for suffix in suffixes:
            owners.setdefault(f"{base}{suffix}".casefold(), set()).add(path)
    return sorted({path for group in owners.values() if len(group) > 1 for path in group})


def refuse_overwriting_inputs(inputs: Iterable[Path], outputs: Iterable[Path], out: Path) -> None:
    """InputError when any planned output is one of the input files (same file on disk, whatever the spelling)."""
    identities = {_identity(path): path for path in inputs}
    identities.pop(None, None)
    for path in outputs:
        found = identities.get(_identity(path))
        if found is not None:
            raise InputError(
                f"{out}: the predictions would overwrite the slide {found.name} there; pick an --out that is not "
                "the slide folder"
            )


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino
