"""Class labels of the slides (image classification): the label class list, single- or multi-label mode, a
slide's labels with an explicit labeled state, and the targets a data loader needs.

Class labels are independent of the segmentation ``classes`` and masks: a slide may have a mask, class
labels, both or neither. Every change is saved atomically (``_transaction``), so a refused change leaves the
manifest as it was.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ..errors import ProjectError
from .base import ProjectBase
from .manifest import LabelSchema, validated_label_schema


class LabelStore(ProjectBase):
    """The class list and per-slide class labels of a project."""

    @property
    def label_classes(self) -> list[str]:
        """The label class names, in index order (empty: no class labels yet)."""
        return list(self.label_schema.classes)

    @property
    def label_mode(self) -> str:
        """'single' (one class per slide) or 'multi' (any set of classes per slide)."""
        return self.label_schema.mode

    @property
    def none_class(self) -> str | None:
        """Single-label mode: the class meaning 'none of the others' (e.g. ISIC-2017's nevus), if any."""
        return self.label_schema.none_class

    def set_label_classes(self, classes: Iterable[str], mode: str = "single", none_class: str | None = None) -> None:
        """Set the class list, mode and none class; ProjectError when a labeled slide would no longer fit.

        Reordering and adding classes are always safe (labels are stored by name); dropping a class in use or
        going to single-label mode while a slide has several labels is refused. Use :meth:`rename_label_class`
        to rename.
        """
        schema = self._schema(list(classes), mode, none_class)
        records = [*self.slides, *self._vanished.values()]  # a vanished slide may come back
        for rec in records:
            if not rec.labeled:
                continue
            gone = [name for name in rec.labels if name not in schema.classes]
            if gone:
                users = sum(gone[0] in r.labels for r in records)
                raise ProjectError(
                    f"cannot drop label class {gone[0]!r}: {users} slide(s) carry it; relabel or clear them first, "
                    "or rename it with rename_label_class"
                )
            if schema.mode == "single" and len(rec.labels) != 1:
                raise ProjectError(
                    f"{rec.id}: has {len(rec.labels)} labels, single-label mode needs one; relabel it or keep multi"
                )
        with self._transaction():
            self.label_schema = schema

    def rename_label_class(self, old: str, new: str) -> None:
        """Rename a label class everywhere (class list, none class, every slide's labels)."""
        if old not in self.label_schema.classes:
            raise ProjectError(f"no label class {old!r} (classes: {self.label_classes}); check the name")
        if new in self.label_schema.classes and new != old:
            raise ProjectError(f"label class {new!r} exists already; pick another name")
        classes = [new if c == old else c for c in self.label_schema.classes]
        none_class = new if self.none_class == old else self.none_class
        schema = self._schema(classes, self.label_mode, none_class)
        with self._transaction():
            self.label_schema = schema
            for rec in [*self.slides, *self._vanished.values()]:
                rec.labels = [new if name == old else name for name in rec.labels]

    def set_labels(self, slide_id: str, labels: str | Iterable[str]) -> None:
        """Give a slide its class labels and mark it labeled (multi-label: an empty set is 'no positive label')."""
        names = [labels] if isinstance(labels, str) else list(labels)
        self.record(slide_id)
        if not self.label_schema.classes:
            raise ProjectError(f"{slide_id}: the project has no label classes yet; set the class list first")
        unknown = [name for name in names if name not in self.label_schema.classes]
        if unknown:
            raise ProjectError(
                f"{slide_id}: {unknown[0]!r} is not a label class ({', '.join(self.label_classes)}); "
                "pick one of them or add it to the class list"
            )
        if self.label_mode == "single" and len(names) != 1:
            raise ProjectError(
                f"{slide_id}: {len(names)} labels given, single-label mode takes one; give one class "
                "or switch the project to multi-label"
            )
        ordered = [c for c in self.label_schema.classes if c in names]  # class order, no duplicates
        with self._transaction():
            rec = self.record(slide_id)
            rec.labeled, rec.labels = True, ordered

    def clear_labels(self, slide_id: str) -> None:
        """Mark a slide unlabeled (its labels are removed)."""
        self.record(slide_id)
        with self._transaction():
            rec = self.record(slide_id)
            rec.labeled, rec.labels = False, []

    def labels_of(self, slide_id: str) -> list[str] | None:
        """A slide's class labels, or None when it is not labeled."""
        rec = self.record(slide_id)
        return list(rec.labels) if rec.labeled else None

    def labeled_ids(self, split: str | None = None) -> list[str]:
        """Ids of slides with class labels, optionally only those of one split."""
        return [r.id for r in self.slides if r.labeled and (split is None or r.split == split)]

    def unlabeled_ids(self) -> list[str]:
        """Ids of slides without class labels: the unlabeled pool of classification."""
        return [r.id for r in self.slides if not r.labeled]

    def label_index(self, slide_id: str) -> int:
        """Single-label mode: the index of the slide's class in :attr:`label_classes`."""
        if self.label_mode != "single":
            raise ProjectError("the project's class labels are multi-label; use label_vector for 0/1 targets")
        return self.label_schema.classes.index(self._labels(slide_id)[0])

    def label_vector(self, slide_id: str) -> np.ndarray:
        """A float32 0/1 vector over :attr:`label_classes` (one-hot in single-label mode)."""
        vector = np.zeros(len(self.label_schema.classes), np.float32)
        for name in self._labels(slide_id):
            vector[self.label_schema.classes.index(name)] = 1.0
        return vector

    def label_counts(self, split: str | None = None) -> dict[str, int]:
        """Labeled slides per class (optionally of one split), in class order."""
        counts = dict.fromkeys(self.label_schema.classes, 0)
        for slide_id in self.labeled_ids(split):
            for name in self.record(slide_id).labels:
                counts[name] += 1
        return counts

    def _labels(self, slide_id: str) -> list[str]:
        labels = self.labels_of(slide_id)
        if labels is None:
            raise ProjectError(f"{slide_id}: no class label yet; label it or leave it out of the labeled set")
        return labels

    @staticmethod
    def _schema(classes: list[str], mode: str, none_class: str | None) -> LabelSchema:
        try:
            return validated_label_schema(classes, mode, none_class)
        except ValueError as exc:
            raise ProjectError(str(exc)) from exc
