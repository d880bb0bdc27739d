"""Mask values against the project's classes: the ``--mask-values`` mapping, lossy (JPEG) masks, values that are
not class ids. Nothing here writes; every check ends in one InputError line naming the file and the fix."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from ..errors import InputError

JPEG_MAGIC = b"\xff\xd8\xff"
LOSSY_TIFF = {6: "old-style JPEG", 7: "JPEG", 34712: "JPEG 2000", 34892: "lossy JPEG", 50001: "WebP", 50002: "JPEG XL"}
_PAIR = re.compile(r"^\s*(\d+)\s*[:=]\s*(\d+)\s*$")


def parse_mask_values(text: str | Mapping[int, int] | None) -> dict[int, int]:
    """``"255:1,3:0"`` (or a mapping) as {mask value: class id}; InputError for anything else."""
    if text is None:
        return {}
    if isinstance(text, Mapping):
        pairs = [(k, v) for k, v in text.items()]
    else:
        pairs = []
        for part in [p for p in str(text).split(",") if p.strip()]:
            match = _PAIR.match(part)
            if match is None:
                raise InputError(
                    f"--mask-values {text!r}: {part.strip()!r} is not VALUE:CLASS; write e.g. --mask-values 255:1,3:0"
                )
            pairs.append((int(match[1]), int(match[2])))
    mapping: dict[int, int] = {}
    for value, target in pairs:
        if not (isinstance(value, int) and isinstance(target, int)) or value < 0 or target < 0:
            raise InputError(f"--mask-values: {value}:{target} must map a value >= 0 to a class id >= 0")
        if mapping.get(value, target) != target:
            raise InputError(
                f"--mask-values: value {value} is mapped twice ({mapping[value]} and {target}); map it once"
            )
        mapping[value] = target
    return mapping


def lossy_reason(path: Path) -> str | None:
    """Why a mask file is lossy (JPEG, or a TIFF with lossy compression), else None."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head[:3] == JPEG_MAGIC or path.suffix.lower() in (".jpg", ".jpeg"):
        return "JPEG compression changes label values along every edge (a 0/255 mask gets values in between)"
    if head in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        import tifffile

        try:
            with tifffile.TiffFile(path) as tif:
                code = int(tif.pages.first.compression)
        except Exception:  # unreadable TIFFs are reported by the mask reader with its reason
            return None
        if code in LOSSY_TIFF:
            return f"the TIFF uses lossy {LOSSY_TIFF[code]} compression, which changes label values along edges"
    return None


def refuse_lossy(path: Path) -> None:
    """InputError naming the file and the reason when a mask file is lossy."""
    reason = lossy_reason(path)
    if reason is not None:
        raise InputError(f"{path}: lossy mask refused: {reason}; export the masks as PNG or TIFF (lossless)")


def values_text(values: set[int], most: int = 8) -> str:
    """``0, 3, 255`` (the first ``most`` values, then how many in all) for messages."""
    ordered = sorted(values)
    text = ", ".join(map(str, ordered[:most]))
    return text if len(ordered) <= most else f"{text}, … ({len(ordered)} values)"


def describe_classes(classes: list[str]) -> str:
    """``0 background, 1 foreground`` for messages."""
    return ", ".join(f"{k} {name}" for k, name in enumerate(classes))


def auto_mapping(values: set[int], n_classes: int) -> dict[int, int]:
    """{v: 1} when all masks together are binary 0/v with v not a class id (e.g. 0/255), else {}."""
    nonzero = sorted(v for v in values if v != 0)
    if n_classes >= 2 and len(nonzero) == 1 and nonzero[0] >= n_classes:
        return {nonzero[0]: 1}
    return {}


def added_classes(mapping: dict[int, int], n_classes: int) -> int:
    """How many classes the explicit mapping adds: its class ids above the project's, consecutive; else InputError."""
    new = sorted({t for t in mapping.values() if t >= n_classes})
    if new and new != list(range(n_classes, new[-1] + 1)):
        missing = sorted(set(range(n_classes, new[-1] + 1)) - set(new))
        raise InputError(
            f"--mask-values: class ids {', '.join(map(str, new))} skip {', '.join(map(str, missing[:5]))} "
            f"(the project has {n_classes} classes); map to consecutive class ids"
        )
    return len(new)


def check_mask_values(found: dict[Path, set[int]], mapping: dict[int, int], classes: list[str], n_added: int) -> None:
    """InputError naming the mask file whose values (after ``mapping``) are not class ids, the values and the fix.

    Of several such files the one with the most distinct values outside the classes is named (a stray value is
    in the odd file out); the others are counted.
    """
    n_classes = len(classes) + n_added
    bad = {path: sorted(v for v in values if mapping.get(v, v) >= n_classes) for path, values in found.items()}
    bad = {path: values for path, values in bad.items() if values}
    if not bad:
        return
    path = max(bad, key=lambda p: len(bad[p]))
    values = bad[path]
    example = ",".join(f"{v}:{1 if v == values[-1] else 0}" for v in sorted(values, reverse=True)[:3])
    others = f" ({len(bad) - 1} more mask files too)" if len(bad) > 1 else ""
    raise InputError(
        f"{path}: mask values {values_text(found[path])}: {values_text(set(values))} not class ids of the project "
        f"({describe_classes(classes)}){others}; map them, e.g. --mask-values {example} (a new class id adds a class)"
    )
