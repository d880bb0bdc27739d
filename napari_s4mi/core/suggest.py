"""Which slide to annotate next: a seeded random order over the unannotated slides (active learning later)."""

from __future__ import annotations

import random

from .project import Project


def annotation_order(project: Project, seed: int = 0) -> list[str]:
    """All slide ids in a fixed, seeded random order (stable across sessions for the same slides)."""
    ids = sorted(project.ids)
    random.Random(seed).shuffle(ids)
    return ids


def suggest_next(project: Project, current: str | None = None, seed: int = 0) -> str | None:
    """The first unannotated slide in the seeded order other than ``current``; ``current`` itself when it is the
    last one left unannotated; None only when every slide is annotated."""
    pending = set(project.unannotated_ids())
    for slide_id in annotation_order(project, seed):
        if slide_id in pending and slide_id != current:
            return slide_id
    return current if current in pending else None
