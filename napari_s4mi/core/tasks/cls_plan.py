"""Which slides play which role in a classification run: a stratified, seeded validation split of the labeled
slides, a nested label-fraction subset for fine-tuning, and the training-split pool for pretraining.

Slides keep a split stored in the project. Labeled slides without one are split per class (seeded): a fraction
``val_fraction`` of each class to validation. The fine-tuning subset takes, per class, the first
``ceil(fraction x n)`` training slides of one seeded order, so the 10% subset lies inside the 30% subset.
Pretraining sees training-split images only (labeled or not): never the validation or test slides.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import ProjectError
from ..project import Project


@dataclass
class ClsPlan:
    """Slide ids by role. ``hidden``: labeled training slides whose labels this run does not use."""

    labeled: list[str]
    val: list[str]
    test: list[str]
    hidden: list[str]
    unlabeled: list[str]
    messages: list[str] = field(default_factory=list)

    @property
    def pretraining_pool(self) -> list[str]:
        """Every training-split slide, labeled or not."""
        return sorted(self.labeled + self.hidden + self.unlabeled)

    def roles(self) -> dict[str, list[str]]:
        return {"labeled": self.labeled, "val": self.val, "hidden": self.hidden, "unlabeled": self.unlabeled}


def label_key(project: Project, slide_id: str) -> str:
    """The slide's label set as one key, for stratification ('' for 'none of them' in multi-label mode)."""
    return ";".join(sorted(project.record(slide_id).labels))


def _by_class(project: Project, ids: list[str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for slide_id in sorted(ids):
        groups.setdefault(label_key(project, slide_id), []).append(slide_id)
    return groups


def stratified_val(project: Project, ids: list[str], fraction: float, seed: int) -> set[str]:
    """A seeded share ``fraction`` of each class of ``ids`` (rounded; classes of one slide stay in training)."""
    rng = np.random.default_rng([seed, 17])
    chosen: set[str] = set()
    for members in _by_class(project, ids).values():
        n = int(round(fraction * len(members))) if len(members) > 1 else 0
        chosen.update(members[i] for i in rng.permutation(len(members))[:n])
    return chosen


def nested_subset(project: Project, ids: list[str], fraction: float, seed: int) -> list[str]:
    """Per class, the first ``ceil(fraction x n)`` slides of a seeded order (at least one per class)."""
    rng = np.random.default_rng([seed, 29])
    chosen: list[str] = []
    for members in _by_class(project, ids).values():
        order = rng.permutation(len(members))
        chosen.extend(members[i] for i in order[: max(1, math.ceil(fraction * len(members) - 1e-9))])
    return sorted(chosen)


def plan_classification(project: Project, label_fraction: float, seed: int, val_fraction: float) -> ClsPlan:
    """The roles of a run's slides; ProjectError when no slide is labeled."""
    labeled = project.labeled_ids()
    if not labeled and label_fraction > 0:
        raise ProjectError(
            f"{project.root}: no slide has a class label; label slides in napari or import a CSV (--labels FILE)"
        )
    split = {slide_id: project.record(slide_id).split for slide_id in project.ids}
    free = [i for i in labeled if split[i] is None]
    to_val = stratified_val(project, free, val_fraction, seed) if not any(split[i] == "val" for i in labeled) else set()
    val = sorted(i for i in labeled if split[i] == "val" or i in to_val)
    test = sorted(i for i in labeled if split[i] == "test")
    train = [i for i in labeled if i not in to_val and split[i] in (None, "train")]
    subset = nested_subset(project, train, label_fraction, seed) if train else []
    hidden = sorted(set(train) - set(subset))
    labeled_set = set(labeled)
    unlabeled = sorted(i for i in project.ids if i not in labeled_set and split[i] in (None, "train"))
    messages = [] if val else ["no labeled slide for validation: the last checkpoint is used for prediction"]
    return ClsPlan(subset, val, test, hidden, unlabeled, messages)
