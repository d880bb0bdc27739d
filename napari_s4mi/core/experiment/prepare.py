"""The experiment's own projects: a snapshot of the data with the experiment's split written into it.

The experiment never changes the user's project: it builds ``<out>/project`` once, from an images/masks folder, an
images folder with a labels CSV, or a copy of a project (records, class labels, groups and masks), each built in a
temporary folder and renamed into place, so a crash leaves none or a whole one. The split is written into it
(``--split-per-seed``: one copy per seed, ``<out>/project-seed<k>``). The data hash covers the slide list, the
split, the masks' bytes and the class labels.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..project import Project, load_groups_csv
from .spec import SplitSpec
from .splits import check_split, extend_split, groups_from_regex, match_ids, read_split_file, split_slides

try:
    import fcntl
except ImportError:  # Windows: parts of one experiment must not prepare it at the same time
    fcntl = None  # type: ignore[assignment]


@dataclass
class DataSource:
    """Where the slides and their ground truth come from (``project``, or ``images`` with ``masks``/``labels``)."""

    images: Path | None = None
    masks: Path | None = None
    labels: Path | None = None
    project: Path | None = None
    mask_values: str | None = None
    multi_label: bool = False
    none_class: str | None = None

    def describe(self) -> dict[str, str | bool | None]:
        """The source as JSON: absolute paths, import options."""
        paths = {k: getattr(self, k) for k in ("images", "masks", "labels", "project")}
        out: dict[str, str | bool | None] = {
            k: str(Path(v).expanduser().resolve()) if v else None for k, v in paths.items()
        }
        return out | {"mask_values": self.mask_values, "multi_label": self.multi_label, "none_class": self.none_class}

    def task(self) -> str | None:
        """The task the data implies (None when a project holds both kinds of ground truth or neither)."""
        if self.masks is not None or self.labels is not None:
            return "segmentation" if self.masks is not None else "classification"
        if self.project is not None:
            project = Project.open(self.project)
            seg, cls = bool(project.annotated_ids()), bool(project.labeled_ids())
            return None if seg == cls else "segmentation" if seg else "classification"
        return None


def evaluable(project: Project, task: str) -> list[str]:
    """Slides with ground truth for the task: annotated (segmentation) or labeled (classification)."""
    return project.annotated_ids() if task == "segmentation" else project.labeled_ids()


@contextlib.contextmanager
def folder_lock(out: Path) -> Iterator[None]:
    """Hold ``<out>/.prepare.lock`` (blocking): parts started together prepare the experiment once."""
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out / ".prepare.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    except BaseException:
        if created:  # a first preparation that failed leaves no folder behind
            with contextlib.suppress(OSError):
                (out / ".prepare.lock").unlink()
                out.rmdir()
        raise
    finally:
        os.close(fd)


def _build(root: Path, make) -> Project:
    """``make(tmp_root)`` builds a project in a temporary sibling folder, then it is renamed to ``root``."""
    if Project.is_project(root):
        return Project.open(root, refresh=False)
    tmp = root.with_name(f".{root.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        make(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    os.replace(tmp, root)
    return Project.open(root, refresh=False)


def base_project(source: DataSource, task: str, root: Path) -> Project:
    """``root`` as the snapshot of the source data (built once)."""

    def make(tmp: Path) -> None:
        if source.project is not None:
            copy_project(Project.open(source.project), tmp)
            return
        if source.images is None:
            raise InputError("give the data: --images DIR with --masks DIR or --labels CSV, or --project DIR")
        project = Project.create(source.images, project_dir=tmp)
        if task == "segmentation":
            if source.masks is None:
                raise InputError("a segmentation experiment needs --masks DIR with --images (or a --project)")
            project.import_masks(source.masks, mask_values=source.mask_values)
        else:
            if source.labels is None:
                raise InputError("a classification experiment needs --labels CSV with --images (or a --project)")
            mode = "multi" if source.multi_label else None
            project.import_labels_csv(source.labels, mode=mode, none_class=source.none_class, replace=True)

    project = _build(root, make)
    if not evaluable(project, task):
        kind = "annotated (masks)" if task == "segmentation" else "labeled"
        raise InputError(f"{project.root}: no {kind} slide: nothing to train on or test against")
    return project


def copy_project(src: Project, root: Path) -> Project:
    """A new project in ``root`` over ``src``'s slides: its classes, records, class labels and masks."""
    dst = Project.create(src.slides_dir, project_dir=root, classes=src.classes, channel_axis=src.channel_axis)
    records = {r.id: r for r in src.slides}
    for slide_id, rec in records.items():
        if rec.annotated and src.has_mask(slide_id):
            shutil.copy2(src.mask_path(slide_id), dst.mask_path(slide_id))
    with dst._transaction():
        dst.label_schema = src.label_schema
        for rec in dst.slides:
            old = records.get(rec.id)
            if old is not None:
                rec.annotated = old.annotated and src.has_mask(rec.id)
                rec.group, rec.split, rec.labeled, rec.labels = old.group, old.split, old.labeled, list(old.labels)
    return dst


def experiment_split(project: Project, task: str, split: SplitSpec, seed: int) -> dict[str, str]:
    """slide -> split for every slide of the project (see ``splits.split_slides``), groups recorded."""
    ids = evaluable(project, task)
    groups = {r.id: r.group for r in project.slides if r.group}
    if split.groups_csv:
        groups |= match_ids(load_groups_csv(split.groups_csv), project.ids)
    if split.group_regex:
        groups |= groups_from_regex(project.ids, split.group_regex)
    if split.file:
        chosen = read_split_file(split.file, ids)
    else:
        strata = {i: ";".join(sorted(project.record(i).labels)) for i in ids} if task == "classification" else None
        fractions = (split.train, split.val, split.test)
        chosen = split_slides(ids, fractions, split.seed_for(seed), {i: groups[i] for i in ids if i in groups}, strata)
    check_split(chosen, ids)
    result = extend_split(chosen, project.ids, groups)
    with project._transaction():
        for rec in project.slides:
            rec.split, rec.group = result[rec.id], groups.get(rec.id, rec.group)
    return result


def data_hash(project: Project, task: str) -> str:
    """sha256 (16 hex digits) of the slide list, splits, groups, mask bytes (segmentation) or class labels."""
    digest = hashlib.sha256()
    head = {"task": task, "classes": project.classes, "label_classes": project.label_classes}
    digest.update(json.dumps(head, sort_keys=True).encode())
    for rec in sorted(project.slides, key=lambda r: r.id):
        row = [rec.id, rec.split, rec.group]
        if task == "segmentation":
            mask = project.mask_path(rec.id) if rec.annotated else None
            row.append(hashlib.sha256(mask.read_bytes()).hexdigest() if mask is not None else None)
        else:
            row.append(sorted(rec.labels) if rec.labeled else None)
        digest.update(json.dumps(row).encode())
    return digest.hexdigest()[:16]


def project_name(split: SplitSpec, seed: int) -> str:
    """The folder (under the experiment) of the project a seed's runs train on."""
    return f"project-seed{seed}" if split.per_seed else "project"


def prepare_projects(source: DataSource, task: str, split: SplitSpec, seeds: tuple[int, ...], out: Path) -> dict:
    """Build the projects of ``seeds`` that are missing; name -> {data_hash, counts per split} for each built."""
    with folder_lock(out):
        base = base_project(source, task, out / "project")
        info = {}
        for name in dict.fromkeys(project_name(split, s) for s in seeds):
            seed = int(name.removeprefix("project-seed")) if split.per_seed else 0
            done = out / name / ".split-done"
            project = base if name == "project" else _build(out / name, lambda tmp: copy_project(base, tmp))
            if not done.exists():
                experiment_split(project, task, split, seed)
                done.write_text("")
            ids = evaluable(project, task)
            counts = {s: sum(project.record(i).split == s for i in ids) for s in ("train", "val", "test")}
            info[name] = {"data_hash": data_hash(project, task), "slides": counts}
        return info
