"""The bundled sample projects: ten ISIC-2017 slides with masks (two held back from the annotations), and twelve
with class labels (two left unlabeled)."""

from __future__ import annotations

import shutil
from pathlib import Path

from .. import resources_dir
from .project import Project

HELD_BACK = ("ISIC_0000124.jpg", "ISIC_0000126.jpg")


def sample_dir() -> Path:
    """The bundled sample slides and masks (ISIC 2017, CC-0; see PROVENANCE.md there)."""
    return resources_dir() / "sample"


def create_sample_project(project_dir: Path, hold_back: tuple[str, ...] = HELD_BACK) -> Project:
    """A project over the sample slides with every mask imported except the held-back slides'."""
    project = Project.create(sample_dir() / "images", project_dir=project_dir)
    staging = Path(project_dir) / ".sample-masks"
    staging.mkdir(parents=True, exist_ok=True)
    for mask in (sample_dir() / "masks").iterdir():
        if not any(mask.name.startswith(Path(h).stem) for h in hold_back):
            shutil.copy(mask, staging / mask.name)
    project.import_masks(staging)
    shutil.rmtree(staging)
    return project


UNLABELED = ("ISIC_0000232", "ISIC_0000281")


def cls_sample_dir() -> Path:
    """The bundled classification sample: twelve ISIC 2017 slides, four per class, with labels.csv."""
    return resources_dir() / "sample-cls"


def create_cls_sample_project(project_dir: Path, unlabeled: tuple[str, ...] = UNLABELED) -> Project:
    """A project over the classification sample with every label imported except the ``unlabeled`` slides'."""
    project = Project.create(cls_sample_dir() / "images", project_dir=project_dir)
    lines = (cls_sample_dir() / "labels.csv").read_text().splitlines()
    kept = [lines[0]] + [line for line in lines[1:] if line.split(",")[0] not in unlabeled]
    staging = Path(project_dir) / ".sample-labels.csv"
    staging.write_text("\n".join(kept) + "\n")
    project.import_labels_csv(staging)
    staging.unlink()
    return project
