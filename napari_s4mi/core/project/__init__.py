"""The annotation project on disk: a manifest, label masks and training runs beside untouched slides.

A project folder holds ``s4mi-project.json`` (the manifest), ``masks/`` (one label TIFF per slide) and
``runs/``. The slides stay where they are and are only ever read; the slide folder may be read-only. Every
write is atomic (temporary file, then rename) and the in-memory state is rolled back when a save fails, so an
error leaves the previous manifest and masks intact.

A slide counts as annotated only when the user marks it so: saving a half-painted mask does not label it.
Class labels are separate: a slide has an explicit ``labeled`` state and its ``labels`` (see ``labels``).

Modules: ``manifest`` (folder names, SlideRecord, the JSON format), ``base`` (creating/opening a project, its
records, atomic manifest saves), ``probe`` (files that cannot be opened: listed as unreadable, not as slides),
``masks`` (saved masks and predictions), ``mask_values`` (mask values against the classes, ``--mask-values``,
lossy masks), ``mask_import`` (a folder of masks, all or nothing, re-import with ``replace``), ``mask_checks``
(the masks of a run, before training), ``salvage`` and ``rebuild`` (a manifest rebuilt from the slides and
masks), ``splits`` (group-aware train/val/test splits, the groups CSV), ``labels`` (class labels of the slides
for image classification, single- or multi-label), ``label_import`` (class labels from a CSV, all or nothing).
:class:`Project` joins them.
"""

from .base import ProjectBase
from .label_import import LabelImport, LabelImportSummary
from .labels import LabelStore
from .manifest import (
    DEFAULT_PROJECT_DIRNAME,
    FORMAT,
    LABEL_MODES,
    MANIFEST_NAME,
    MASKS_DIRNAME,
    PREDICTIONS_DIRNAME,
    RUNS_DIRNAME,
    SPLITS,
    VERSION,
    LabelSchema,
    SlideRecord,
)
from .mask_import import MASK_SUFFIXES, MaskImport, MaskImportSummary
from .mask_values import parse_mask_values
from .masks import MaskStore
from .rebuild import RebuildSummary, rebuild_project
from .splits import SplitAssignment, load_groups_csv


class Project(MaskImport, SplitAssignment, LabelImport):
    """An annotation project: slide records, classes, masks, class labels and runs under ``root``."""


__all__ = [
    "DEFAULT_PROJECT_DIRNAME",
    "FORMAT",
    "LABEL_MODES",
    "MANIFEST_NAME",
    "MASKS_DIRNAME",
    "MASK_SUFFIXES",
    "PREDICTIONS_DIRNAME",
    "RUNS_DIRNAME",
    "SPLITS",
    "VERSION",
    "LabelImport",
    "LabelImportSummary",
    "LabelSchema",
    "LabelStore",
    "MaskImport",
    "MaskImportSummary",
    "MaskStore",
    "Project",
    "ProjectBase",
    "RebuildSummary",
    "SlideRecord",
    "SplitAssignment",
    "load_groups_csv",
    "parse_mask_values",
    "rebuild_project",
]
