"""The saved masks a segmentation run will learn from, checked before training: a project with a foreground class,
values that are class ids, and one warning (with the count) for empty, background-only masks."""

from __future__ import annotations

import numpy as np

from ..errors import InputError, ProjectError
from .mask_values import describe_classes, values_text
from .masks import MaskStore


def require_foreground(project: MaskStore) -> None:
    """ProjectError (one line, with the fix) when the project's classes hold only the background."""
    if len(project.classes) < 2:
        raise ProjectError(
            f"{project.manifest_path}: classes {project.classes} hold only the background; segmentation needs a "
            'foreground class: set "classes" to e.g. ["background", "foreground"] there, or import masks with '
            "--mask-values 255:1"
        )


def check_training_masks(project: MaskStore, labeled: list[str], val: list[str]) -> list[str]:
    """Check the masks of the ``labeled`` and ``val`` slides (only those are read); return the warnings.

    InputError naming the first mask file whose values are not class ids, the values and the fix. Empty masks
    give one warning with their count.
    """
    require_foreground(project)
    empty_labeled: list[str] = []
    empty_val: list[str] = []
    for ids, empty in ((labeled, empty_labeled), (val, empty_val)):
        for slide_id in ids:
            mask = project.read_mask(slide_id)
            top = int(mask.max()) if mask.size else 0
            if top >= len(project.classes):
                values = {int(v) for v in np.unique(mask)}
                raise InputError(
                    f"{project.mask_path(slide_id)}: mask values {values_text(values)} but the project's classes are "
                    f"{describe_classes(project.classes)}; re-import the masks with --replace and --mask-values "
                    "(e.g. --mask-values 255:1), or repaint the slide"
                )
            if top == 0:
                empty.append(slide_id)
    return _empty_warnings(empty_labeled, len(labeled), empty_val, len(val))


def _empty_warnings(labeled: list[str], n_labeled: int, val: list[str], n_val: int) -> list[str]:
    """One line for the empty masks of a run, or none."""
    if not labeled and not val:
        return []
    names = ", ".join((labeled + val)[:3]) + (", …" if len(labeled) + len(val) > 3 else "")
    if labeled and len(labeled) == n_labeled:
        return [
            f"all {n_labeled} labeled training masks are empty (background only): the network can only learn "
            f"background and its IoU will be 0; paint the foreground of some slides ({names})"
        ]
    parts = [f"{len(labeled)} of {n_labeled} labeled training masks"] if labeled else []
    parts += [f"{len(val)} of {n_val} validation masks"] if val else []
    return [f"{' and '.join(parts)} are empty (background only): {names}; unmark a slide that is not finished"]
