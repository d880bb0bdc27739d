"""Train/val/test splits of the annotated slides: seeded, group-aware (a patient's slides share a split), and the
slide → group table read from a CSV."""

from __future__ import annotations

import csv
import os
from pathlib import Path, PurePosixPath

import numpy as np

from ..errors import InputError, ProjectError
from .base import ProjectBase
from .manifest import SPLITS, SlideRecord

_ID_COLUMNS = ("id", "image", "slide", "image_id", "slide_id", "filename", "file")
_GROUP_COLUMNS = ("group", "patient", "patient_id", "group_id", "subject")


class SplitAssignment(ProjectBase):
    """``assign_splits``: whole groups at a time, keeping the splits already given."""

    def assign_splits(
        self,
        val_fraction: float = 0.2,
        test_fraction: float = 0.0,
        seed: int = 0,
        groups: dict[str, str] | None = None,
        overwrite: bool = False,
    ) -> dict[str, int]:
        """Seeded train/val/test split of the annotated slides, by group when groups are known.

        Slides of one group (``groups`` maps slide ids or stems to group names; else the records' groups)
        always share a split. Slides with a split keep it unless ``overwrite``; a group already placed pulls
        its new members into the same split. At least one group stays in train. Returns the count per split.
        """
        if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
            raise ProjectError(
                f"val_fraction={val_fraction} and test_fraction={test_fraction}: each must be in [0, 1) "
                "and their sum below 1"
            )
        with self._transaction():
            annotated = [r for r in self.slides if r.annotated]
            if groups:
                for rec in annotated:
                    rec.group = _lookup_group(groups, rec.id, rec.group)
            if overwrite:
                for rec in annotated:
                    rec.split = None
            _split_groups(annotated, val_fraction, test_fraction, seed)
        return {s: len(self.annotated_ids(s)) for s in SPLITS}


def _lookup_group(groups: dict[str, str], slide_id: str, default: str | None) -> str | None:
    """A slide's group from a table keyed by id, file name or stem."""
    path = PurePosixPath(slide_id)
    for key in (slide_id, path.name, path.stem):
        if key in groups:
            return str(groups[key])
    return default


def _split_groups(records: list[SlideRecord], val_fraction: float, test_fraction: float, seed: int) -> None:
    """Assign splits to records without one, whole groups at a time (see SplitAssignment.assign_splits)."""
    members: dict[str, list[SlideRecord]] = {}
    for rec in records:
        members.setdefault(rec.group if rec.group is not None else f"\0slide:{rec.id}", []).append(rec)
    counts = dict.fromkeys(SPLITS, 0)
    free: list[str] = []
    for key, recs in members.items():
        placed = [r.split for r in recs if r.split is not None]
        if placed:
            target = max(set(placed), key=placed.count)
            for rec in recs:
                rec.split = rec.split or target
                counts[rec.split] += 1
        else:
            free.append(key)
    total = len(records)
    wanted = {"test": _target(test_fraction, total), "val": _target(val_fraction, total)}
    order = np.random.default_rng(seed).permutation(len(free))
    for pos, idx in enumerate(order):
        key = free[int(idx)]
        size = len(members[key])
        last_free_and_no_train = pos == len(order) - 1 and counts["train"] == 0
        split = "train"
        for name in ("test", "val"):
            if not last_free_and_no_train and counts[name] + size / 2 <= wanted[name]:
                split = name
                break
        for rec in members[key]:
            rec.split = split
        counts[split] += size


def _target(fraction: float, total: int) -> float:
    """Wanted slide count of a split: at least one when the fraction is non-zero and there are 3+ slides."""
    if fraction <= 0:
        return 0.0
    return max(round(fraction * total), 1.0 if total >= 3 else 0.0)


def load_groups_csv(path: str | os.PathLike[str]) -> dict[str, str]:
    """Read slide → group (patient) from a CSV with an id column (id/image/slide) and a group column."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = {(name or "").strip().lower(): name for name in reader.fieldnames or []}
            id_col = next((header[c] for c in _ID_COLUMNS if c in header), None)
            group_col = next((header[c] for c in _GROUP_COLUMNS if c in header), None)
            if id_col is None or group_col is None:
                raise InputError(
                    f"{path}: needs an id column ({'/'.join(_ID_COLUMNS[:3])}) and a group column "
                    f"({'/'.join(_GROUP_COLUMNS[:2])}); found {list(header)}; rename the header"
                )
            rows = [(row.get(id_col), row.get(group_col)) for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: cannot read the groups CSV ({type(exc).__name__}); check the file") from exc
    return {str(i).strip(): str(g).strip() for i, g in rows if i and str(i).strip() and g and str(g).strip()}
