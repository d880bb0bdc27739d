"""Slide-level train/val/test splits for an experiment: seeded, group-aware, optionally stratified, or read from a
file. Pure functions over slide ids (the project is written elsewhere, ``prepare.py``)."""

from __future__ import annotations

import csv
import re
from pathlib import Path, PurePosixPath

import numpy as np

from ..errors import InputError
from ..project import SPLITS

_ID_COLUMNS = ("image_id", "id", "image", "slide", "slide_id", "filename", "file", "name")


def split_slides(
    ids: list[str],
    fractions: tuple[float, float, float] = (0.7, 0.1, 0.2),
    seed: int = 0,
    groups: dict[str, str] | None = None,
    strata: dict[str, str] | None = None,
) -> dict[str, str]:
    """Assign each slide 'train', 'val' or 'test', whole groups at a time (``groups``: slide -> group).

    Groups are shuffled with ``seed`` within their stratum (``strata``: slide -> class; a group's stratum is its
    first slide's), then interleaved across strata by relative rank, so every stretch of the order holds the strata
    in proportion; test takes groups from the front until it holds ``fractions[2]`` of the slides, then val, the rest
    is train. With 3+ slides, test (and val when its fraction is non-zero) get at least one group; train always
    keeps one."""
    if not ids:
        return {}
    members: dict[str, list[str]] = {}
    for slide_id in ids:
        members.setdefault((groups or {}).get(slide_id) or f"\0{slide_id}", []).append(slide_id)
    by_stratum: dict[str, list[str]] = {}
    for key, slides in members.items():
        by_stratum.setdefault((strata or {}).get(slides[0], ""), []).append(key)
    rng = np.random.default_rng([seed, 7919])
    ranked = []
    for s_index, stratum in enumerate(sorted(by_stratum)):
        keys = by_stratum[stratum]
        for rank, k in enumerate(rng.permutation(len(keys))):
            ranked.append(((rank + 0.5) / len(keys), float(rng.random()), s_index, keys[int(k)]))
    order = [key for *_, key in sorted(ranked)]
    total = len(ids)
    wanted = {name: _target(f, total) for name, f in zip(("val", "test"), fractions[1:], strict=True)}
    counts = dict.fromkeys(SPLITS, 0)
    out: dict[str, str] = {}
    for position, key in enumerate(order):
        size = len(members[key])
        last_chance_for_train = position == len(order) - 1 and counts["train"] == 0
        split = "train"
        for name in ("test", "val"):
            if not last_chance_for_train and (
                counts[name] == 0 < wanted[name] or counts[name] + size / 2 <= wanted[name]
            ):
                split = name
                break
        counts[split] += size
        out.update(dict.fromkeys(members[key], split))
    return out


def _target(fraction: float, total: int) -> float:
    """Slides a split should hold: at least one when its fraction is non-zero and there are 3+ slides."""
    if fraction <= 0:
        return 0.0
    return max(round(fraction * total), 1.0 if total >= 3 else 0.0)


def groups_from_regex(ids: list[str], pattern: str) -> dict[str, str]:
    """slide -> group from a regex searched in each file name: its first capture group, else the whole match.
    A slide whose name does not match is a group of its own."""
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise InputError(f"--group-regex {pattern!r}: not a regular expression ({exc})") from None
    groups = {}
    for slide_id in ids:
        match = regex.search(PurePosixPath(slide_id).name)
        if match:
            groups[slide_id] = match.group(1) if regex.groups else match.group(0)
    return groups


def match_ids(table: dict[str, str], ids: list[str]) -> dict[str, str]:
    """Values of a table keyed by slide id, file name or stem, for the slides that it names."""
    out = {}
    for slide_id in ids:
        path = PurePosixPath(slide_id)
        for key in (slide_id, path.name, path.stem):
            if key in table:
                out[slide_id] = table[key]
                break
    return out


def read_split_file(path: str | Path, ids: list[str]) -> dict[str, str]:
    """slide -> split from a CSV ``image_id,split``: every slide of ``ids`` listed, splits among train/val/test."""
    path = Path(path).expanduser()
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = {(name or "").strip().lower(): name for name in reader.fieldnames or []}
            id_col = next((header[c] for c in _ID_COLUMNS if c in header), None)
            if id_col is None or "split" not in header:
                raise InputError(f"{path}: needs the columns image_id and split; found {list(header)}")
            table = {}
            for line, row in enumerate(reader, start=2):
                key, split = (row.get(id_col) or "").strip(), (row.get(header["split"]) or "").strip().lower()
                if key and split not in SPLITS:
                    raise InputError(f"{path}: row {line}: split {split!r} for {key}; use train, val or test")
                if key:
                    table[key] = split
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: cannot read the split file ({type(exc).__name__}); check the file") from exc
    found = match_ids(table, ids)
    missing = [i for i in ids if i not in found]
    if missing:
        raise InputError(f"{path}: {len(missing)} slide(s) with ground truth have no split, e.g. {missing[0]}")
    return found


def extend_split(split: dict[str, str], all_ids: list[str], groups: dict[str, str]) -> dict[str, str]:
    """Slides without ground truth follow their group into its split; others are training images (unlabeled)."""
    group_split = {groups[i]: s for i, s in split.items() if i in groups}
    return {i: split.get(i) or group_split.get(groups.get(i, "\0"), "train") for i in all_ids}


def check_split(split: dict[str, str], evaluable: list[str]) -> dict[str, int]:
    """Counts per split of the slides with ground truth; InputError when train or test is empty."""
    counts = {name: sum(split[i] == name for i in evaluable) for name in SPLITS}
    if not counts["train"] or not counts["test"]:
        raise InputError(
            f"the split leaves {counts['train']} training and {counts['test']} test slides with ground truth: "
            "both need at least one (more slides, or another split)"
        )
    return counts
