"""Class labels in the project: class list and mode, a slide's labels with an explicit labeled state (saved
atomically), CSV import (class names or one-hot / multi-hot columns, the ISIC-2017 none class), errors that name
the row and the fix and leave the manifest byte-identical, labels beside segmentation masks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from napari_s4mi.core.errors import InputError, ProjectError
from napari_s4mi.core.project import MANIFEST_NAME, Project
from napari_s4mi.core.sample import HELD_BACK, create_sample_project

ISIC = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "isic2017"
ISIC_CLASSES = ["nevus", "melanoma", "seborrheic_keratosis"]
IDS = [
    "ISIC_0000112",
    "ISIC_0000113",
    "ISIC_0000116",
    "ISIC_0000119",
    "ISIC_0000120",
    "ISIC_0000121",
    "ISIC_0000122",
    "ISIC_0000123",
    "ISIC_0000124",
    "ISIC_0000126",
]


@pytest.fixture()
def project(tmp_path: Path) -> Project:
    """The bundled sample project (masks of 8 slides imported) in a tmp folder."""
    return create_sample_project(tmp_path / "p")


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text.strip() + "\n", encoding="utf-8")
    return path


def manifest_bytes(project: Project) -> bytes:
    return (project.root / MANIFEST_NAME).read_bytes()


def reopen(project: Project) -> Project:
    return Project.open(project.root)


def isic_one_hot(path: Path, rows: dict[str, tuple[str, str]]) -> Path:
    """An ISIC-2017 part 3 style ground truth: image_id,melanoma,seborrheic_keratosis with 0.0/1.0 values."""
    lines = ["image_id,melanoma,seborrheic_keratosis", *(f"{i},{m},{s}" for i, (m, s) in rows.items())]
    return write_csv(path, "\n".join(lines))


# ------------------------------------------------------------------------------------------------- the store


def test_set_and_clear_labels_persist_after_reopening(project: Project) -> None:
    project.set_label_classes(ISIC_CLASSES, none_class="nevus")
    project.set_labels(f"{IDS[0]}.jpg", "melanoma")
    project.set_labels(f"{IDS[1]}.jpg", ["seborrheic_keratosis"])
    project.set_labels(f"{IDS[2]}.jpg", "nevus")
    again = reopen(project)
    assert (again.label_classes, again.label_mode, again.none_class) == (ISIC_CLASSES, "single", "nevus")
    assert again.labeled_ids() == [f"{i}.jpg" for i in IDS[:3]]
    assert again.labels_of(f"{IDS[0]}.jpg") == ["melanoma"] and again.labels_of(f"{IDS[5]}.jpg") is None
    assert [again.label_index(f"{i}.jpg") for i in IDS[:3]] == [1, 2, 0]
    assert again.label_vector(f"{IDS[1]}.jpg").tolist() == [0.0, 0.0, 1.0]
    assert again.label_vector(f"{IDS[1]}.jpg").dtype == np.float32
    assert again.label_counts() == {"nevus": 1, "melanoma": 1, "seborrheic_keratosis": 1}
    assert len(again.unlabeled_ids()) == 7
    data = json.loads(manifest_bytes(again))
    assert data["label_classes"] == ISIC_CLASSES and data["label_mode"] == "single" and data["none_class"] == "nevus"
    entries = {s["id"]: s for s in data["slides"]}
    assert entries[f"{IDS[0]}.jpg"]["labeled"] is True and entries[f"{IDS[0]}.jpg"]["labels"] == ["melanoma"]
    assert "labels" not in entries[f"{IDS[5]}.jpg"]  # unlabeled slides keep the old entry
    again.clear_labels(f"{IDS[0]}.jpg")
    third = reopen(again)
    assert third.labels_of(f"{IDS[0]}.jpg") is None and not third.record(f"{IDS[0]}.jpg").labeled
    assert third.labeled_ids() == [f"{i}.jpg" for i in IDS[1:3]]
    with pytest.raises(ProjectError, match="no class label yet"):
        third.label_index(f"{IDS[0]}.jpg")


def test_manifest_without_label_keys_opens_and_is_unchanged(project: Project) -> None:
    data = json.loads(manifest_bytes(project))
    assert not {"label_classes", "label_mode", "none_class"} & set(data)
    assert all(set(s) == {"id", "annotated", "split", "group"} for s in data["slides"])
    old = {k: v for k, v in data.items()}
    old["slides"] = [{"id": s["id"], "annotated": s["annotated"]} for s in data["slides"]]  # an older manifest
    (project.root / MANIFEST_NAME).write_text(json.dumps(old))
    again = reopen(project)
    assert again.label_classes == [] and again.labeled_ids() == [] and again.label_mode == "single"
    assert again.annotated_ids() == project.annotated_ids()


def test_label_errors_leave_the_project_as_it_was(project: Project) -> None:
    slide = f"{IDS[0]}.jpg"
    with pytest.raises(ProjectError, match="no label classes yet; set the class list first"):
        project.set_labels(slide, "melanoma")
    project.set_label_classes(ISIC_CLASSES)
    project.set_labels(slide, "melanoma")
    before = manifest_bytes(project)
    with pytest.raises(ProjectError, match=r"'melanomma' is not a label class .*pick one of them"):
        project.set_labels(slide, "melanomma")
    with pytest.raises(ProjectError, match="single-label mode takes one"):
        project.set_labels(slide, ["melanoma", "nevus"])
    with pytest.raises(ProjectError, match="cannot drop label class 'melanoma': 1 slide"):
        project.set_label_classes(["nevus", "seborrheic_keratosis"])
    with pytest.raises(ProjectError, match="listed twice"):
        project.set_label_classes(["nevus", "nevus"])
    with pytest.raises(ProjectError, match="none class only applies to single-label"):
        project.set_label_classes(ISIC_CLASSES, mode="multi", none_class="nevus")
    with pytest.raises(ProjectError, match="not a slide of project"):
        project.set_labels("ISIC_0000001.jpg", "nevus")
    assert manifest_bytes(project) == before and project.labels_of(slide) == ["melanoma"]


def test_rename_and_reorder_label_classes(project: Project) -> None:
    project.set_label_classes(ISIC_CLASSES, none_class="nevus")
    project.set_labels(f"{IDS[0]}.jpg", "nevus")
    project.set_labels(f"{IDS[1]}.jpg", "melanoma")
    project.rename_label_class("nevus", "benign")
    project.set_label_classes(["melanoma", "benign", "seborrheic_keratosis", "other"], none_class="benign")
    again = reopen(project)
    assert again.label_classes == ["melanoma", "benign", "seborrheic_keratosis", "other"]
    assert again.none_class == "benign" and again.labels_of(f"{IDS[0]}.jpg") == ["benign"]
    assert again.label_index(f"{IDS[0]}.jpg") == 1 and again.label_index(f"{IDS[1]}.jpg") == 0
    with pytest.raises(ProjectError, match="exists already"):
        again.rename_label_class("benign", "melanoma")


def test_multi_label_mode(project: Project) -> None:
    project.set_label_classes(["pigmented", "vascular", "ulcerated"], mode="multi")
    project.set_labels(f"{IDS[0]}.jpg", ["ulcerated", "pigmented"])
    project.set_labels(f"{IDS[1]}.jpg", [])  # labeled: no positive label
    again = reopen(project)
    assert again.labeled_ids() == [f"{IDS[0]}.jpg", f"{IDS[1]}.jpg"]
    assert again.labels_of(f"{IDS[0]}.jpg") == ["pigmented", "ulcerated"] and again.labels_of(f"{IDS[1]}.jpg") == []
    assert again.label_vector(f"{IDS[0]}.jpg").tolist() == [1.0, 0.0, 1.0]
    assert again.label_vector(f"{IDS[1]}.jpg").tolist() == [0.0, 0.0, 0.0]
    assert again.label_counts() == {"pigmented": 1, "vascular": 0, "ulcerated": 1}
    with pytest.raises(ProjectError, match="multi-label; use label_vector"):
        again.label_index(f"{IDS[0]}.jpg")
    before = manifest_bytes(again)
    with pytest.raises(ProjectError, match="has 2 labels, single-label mode needs one"):
        again.set_label_classes(["pigmented", "vascular", "ulcerated"], mode="single")
    assert manifest_bytes(again) == before


# ------------------------------------------------------------------------------------------------- CSV import


def test_import_class_names_by_id_file_name_or_stem(project: Project, tmp_path: Path) -> None:
    csv = write_csv(
        tmp_path / "labels.csv",
        f"""
image_id,label
{IDS[0]},melanoma
{IDS[1]}.jpg, nevus
{IDS[2]},seborrheic_keratosis
{IDS[3]},nevus
""",
    )
    summary = project.import_labels_csv(csv)
    assert summary.slides == 4 and summary.mode == "single" and summary.changed == 0
    assert summary.classes == ("melanoma", "nevus", "seborrheic_keratosis")  # alphabetical without numbers
    assert summary.counts == {"melanoma": 1, "nevus": 2, "seborrheic_keratosis": 1}
    assert str(summary) == "labels.csv: class labels of 4 slides imported (single-label: melanoma 1, nevus 2, " + (
        "seborrheic_keratosis 1)"
    )
    again = reopen(project)
    assert again.labels_of(f"{IDS[1]}.jpg") == ["nevus"] and again.label_index(f"{IDS[2]}.jpg") == 2
    assert again.labeled_ids() == [f"{i}.jpg" for i in IDS[:4]]


def test_class_name_column_wins_over_a_numeric_label(project: Project, tmp_path: Path) -> None:
    csv = write_csv(
        tmp_path / "labels.csv",
        f"""
image_id,label,class_name,has_mask
{IDS[0]},2,seborrheic_keratosis,1
{IDS[1]},1,melanoma,1
{IDS[2]},0,nevus,0
""",
    )
    summary = project.import_labels_csv(csv)
    assert list(summary.classes) == ISIC_CLASSES  # ordered by the numeric label
    assert [project.label_index(f"{i}.jpg") for i in IDS[:3]] == [2, 1, 0]


def test_isic_part3_one_hot_with_a_none_class(project: Project, tmp_path: Path) -> None:
    csv = isic_one_hot(
        tmp_path / "gt.csv",
        {IDS[0]: ("1.0", "0.0"), IDS[1]: ("0.0", "0.0"), IDS[2]: ("0.0", "1.0"), IDS[3]: ("0", "0")},
    )
    summary = project.import_labels_csv(csv, none_class="nevus")
    assert list(summary.classes) == ISIC_CLASSES and summary.counts == {
        "nevus": 2,
        "melanoma": 1,
        "seborrheic_keratosis": 1,
    }
    again = reopen(project)
    assert again.none_class == "nevus"
    assert [again.label_index(f"{i}.jpg") for i in IDS[:4]] == [1, 0, 2, 0]
    # the same file again: the project's none class is used, nothing changes
    assert again.import_labels_csv(csv).changed == 0


def test_multi_hot_and_multi_label_names(project: Project, tmp_path: Path) -> None:
    hot = write_csv(
        tmp_path / "hot.csv",
        f"""
image_id,pigmented,vascular,ulcerated
{IDS[0]},1,0,1
{IDS[1]},0,0,0
{IDS[2]},0.0,1.0,0.0
""",
    )
    summary = project.import_labels_csv(hot, mode="multi")
    assert summary.mode == "multi" and summary.counts == {"pigmented": 1, "vascular": 1, "ulcerated": 1}
    again = reopen(project)
    assert again.label_vector(f"{IDS[0]}.jpg").tolist() == [1, 0, 1]
    assert again.labels_of(f"{IDS[1]}.jpg") == [] and f"{IDS[1]}.jpg" in again.labeled_ids()
    names = write_csv(
        tmp_path / "names.csv",
        f"""
image_id,labels
{IDS[3]},ulcerated; vascular
{IDS[4]},
""",
    )
    summary = again.import_labels_csv(names)  # the project's mode: multi
    assert summary.slides == 2 and again.labels_of(f"{IDS[3]}.jpg") == ["vascular", "ulcerated"]
    assert again.labels_of(f"{IDS[4]}.jpg") == [] and len(again.labeled_ids()) == 5


def test_import_overwrites_its_rows_and_replace_starts_over(project: Project, tmp_path: Path) -> None:
    project.set_label_classes(ISIC_CLASSES, none_class="nevus")
    for slide_id, name in zip(IDS[:3], ("melanoma", "nevus", "nevus"), strict=True):
        project.set_labels(f"{slide_id}.jpg", name)
    csv = isic_one_hot(tmp_path / "gt.csv", {IDS[0]: ("0", "1"), IDS[1]: ("0", "0"), IDS[4]: ("1", "0")})
    summary = project.import_labels_csv(csv)
    assert summary.changed == 1 and summary.slides == 3
    assert project.labels_of(f"{IDS[0]}.jpg") == ["seborrheic_keratosis"]
    assert project.labels_of(f"{IDS[2]}.jpg") == ["nevus"]  # not in the CSV: kept
    names = write_csv(tmp_path / "names.csv", f"image_id,label\n{IDS[5]},benign\n{IDS[6]},malignant")
    summary = project.import_labels_csv(names, replace=True)
    assert summary.classes == ("benign", "malignant") and summary.changed == 4
    again = reopen(project)
    assert again.labeled_ids() == [f"{IDS[5]}.jpg", f"{IDS[6]}.jpg"] and again.none_class is None


CASES = [
    (  # unknown image id
        f"image_id,label\n{IDS[0]},nevus\nISIC_9999999,melanoma",
        {},
        r"row 3: no slide ISIC_9999999 in the project; remove the row or add the slide",
    ),
    (  # unknown class name in a project that has its classes
        f"image_id,label\n{IDS[0]},nevus\n{IDS[1]},melanomma",
        {},
        r"row 3: unknown class 'melanomma' \(classes: nevus, melanoma, seborrheic_keratosis\); fix the row",
    ),
    (  # two ones in single-label mode
        f"image_id,melanoma,seborrheic_keratosis\n{IDS[0]},0.0,0.0\n{IDS[1]},1.0,0.0\n{IDS[2]},1.0,1.0",
        {"none_class": "nevus"},
        r"row 4: neither one-hot nor all-zero \(1 in melanoma, seborrheic_keratosis\) in single-label mode; "
        "use multi-label mode or fix the row",
    ),
    (  # not 0/1
        f"image_id,melanoma,seborrheic_keratosis\n{IDS[0]},0.0,0.5",
        {},
        r"row 2: seborrheic_keratosis='0.5' is not 0 or 1; fix the row",
    ),
    (  # the same slide twice
        f"image_id,label\n{IDS[0]},nevus\n{IDS[0]}.jpg,melanoma",
        {},
        r"row 3: ISIC_0000112.jpg is given again \(first on row 2\); remove one of them",
    ),
    (  # several names in single-label mode
        f"image_id,label\n{IDS[0]},nevus;melanoma",
        {},
        r"row 2: several labels 'nevus;melanoma' in single-label mode; use multi-label mode or fix the row",
    ),
    (  # a column that is no class of the project
        f"image_id,melanoma,keratosis\n{IDS[0]},1,0",
        {},
        r"row 1: column 'keratosis' is not a label class of the project .*rename the column, or import with replace",
    ),
    (  # a different mode than the project's
        f"image_id,label\n{IDS[0]},nevus",
        {"mode": "multi"},
        r"the project's class labels are single-label, not multi-label; import with mode='single'",
    ),
    (  # no id column
        "slide_name,label\nx,nevus",
        {},
        r"row 1: no image id column .*rename the header",
    ),
]


CASE_IDS = ["image-id", "class", "two-ones", "not-0-1", "twice", "several-names", "column", "mode", "no-id-column"]


@pytest.mark.parametrize(("text", "kwargs", "message"), CASES, ids=CASE_IDS)
def test_import_errors_name_the_row_and_change_nothing(
    project: Project, tmp_path: Path, text: str, kwargs: dict, message: str
) -> None:
    project.set_label_classes(ISIC_CLASSES)
    project.set_labels(f"{IDS[9]}.jpg", "melanoma")
    before = manifest_bytes(project)
    csv = write_csv(tmp_path / "bad.csv", text)
    with pytest.raises(InputError, match=message) as info:
        project.import_labels_csv(csv, **kwargs)
    assert str(info.value).startswith(str(csv)) and "\n" not in str(info.value)
    assert manifest_bytes(project) == before
    assert project.labeled_ids() == [f"{IDS[9]}.jpg"] and project.none_class is None
    assert reopen(project).labeled_ids() == [f"{IDS[9]}.jpg"]


def test_all_zero_row_without_a_none_class(project: Project, tmp_path: Path) -> None:
    before = manifest_bytes(project)
    csv = isic_one_hot(tmp_path / "gt.csv", {IDS[0]: ("1.0", "0.0"), IDS[1]: ("0.0", "0.0")})
    with pytest.raises(InputError, match=r"row 3: all-zero row and no none class; pass a none-class name"):
        project.import_labels_csv(csv)
    with pytest.raises(InputError, match=r"none class only applies to single-label mode"):
        project.import_labels_csv(csv, mode="multi", none_class="nevus")
    assert manifest_bytes(project) == before and project.label_classes == []


def test_masks_and_class_labels_live_in_one_project(project: Project, tmp_path: Path) -> None:
    annotated = project.annotated_ids()
    assert len(annotated) == 8 and not set(HELD_BACK) & set(annotated)
    mask = project.read_mask(annotated[0])
    csv = isic_one_hot(tmp_path / "gt.csv", {i: ("1.0" if k % 3 == 0 else "0.0", "0.0") for k, i in enumerate(IDS)})
    project.import_labels_csv(csv, none_class="nevus")
    counts = project.assign_splits(val_fraction=0.25, seed=0)
    again = reopen(project)
    assert again.classes == ["background", "foreground"] and again.label_classes == ISIC_CLASSES
    assert again.annotated_ids() == annotated and len(again.labeled_ids()) == 10
    assert np.array_equal(again.read_mask(annotated[0]), mask)
    assert {s: len(again.annotated_ids(s)) for s in counts} == counts
    held = HELD_BACK[0]
    assert again.labels_of(held) is not None and not again.record(held).annotated and not again.has_mask(held)
    again.set_annotated(annotated[1], False)
    assert reopen(again).labels_of(annotated[1]) is not None


@pytest.mark.skipif(not (ISIC / "labels" / "labels.csv").is_file(), reason="ISIC-2017 data not available")
def test_real_isic2017_label_files(tmp_path: Path) -> None:
    project = Project.create(ISIC / "images", project_dir=tmp_path / "p")
    summary = project.import_labels_csv(ISIC / "labels" / "labels.csv")
    assert list(summary.classes) == ISIC_CLASSES and summary.slides == 2000
    assert summary.counts == {"nevus": 1372, "melanoma": 374, "seborrheic_keratosis": 254}
    by_name = {i: project.label_index(i) for i in project.ids}
    part3 = ISIC / "labels" / "ISIC-2017_Training_Part3_GroundTruth.csv"
    again = Project.open(project.root).import_labels_csv(part3, none_class="nevus", replace=True)
    assert again.changed == 0 and again.counts == summary.counts
    reopened = Project.open(project.root)
    assert {i: reopened.label_index(i) for i in reopened.ids} == by_name
    multi = reopened.import_labels_csv(part3, mode="multi", replace=True)
    assert multi.classes == ("melanoma", "seborrheic_keratosis") and multi.counts == {
        "melanoma": 374,
        "seborrheic_keratosis": 254,
    }
    assert sum(not reopened.labels_of(i) for i in reopened.ids) == 1372
    with pytest.raises(InputError, match="row 2: all-zero row and no none class"):
        Project.open(project.root).import_labels_csv(part3, mode="single", replace=True)
