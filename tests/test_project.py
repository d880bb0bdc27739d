"""The annotation project on disk: creation, reopening, masks, import, splits, atomicity, bad manifests."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
from skimage import io as skio

from napari_s4mi.core.errors import InputError, ProjectError
from napari_s4mi.core.project import MANIFEST_NAME, Project, SlideRecord, load_groups_csv
from napari_s4mi.core.project import base as project_base

ISIC = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "isic2017"


def _write_slide(path: Path, h: int = 12, w: int = 16, seed: int = 0) -> None:
    img = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    if path.suffix in (".tif", ".tiff"):
        tifffile.imwrite(path, img, photometric="rgb")
    else:
        skio.imsave(path, img, check_contrast=False)


def _slide_folder(root: Path, names=("a.png", "b.jpg", "c.tif"), h: int = 12, w: int = 16) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(names):
        _write_slide(root / name, h, w, seed=k)
    return root


def _tree_hash(folder: Path, skip: str = ".s4mi") -> dict[str, str]:
    """Digest of every file under ``folder`` except the project folder: slides must stay untouched."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and skip not in p.relative_to(folder).parts
    }


def _binary_mask(h: int = 12, w: int = 16, value: int = 255) -> np.ndarray:
    mask = np.zeros((h, w), np.uint8)
    mask[2:7, 3:11] = value
    return mask


# ------------------------------------------------------------------------------------------------- creation


def test_create_default_location_and_manifest(tmp_path: Path) -> None:
    slides = _slide_folder(tmp_path / "slides")
    before = _tree_hash(slides)
    project = Project.create(slides)
    assert project.root == (slides / ".s4mi").resolve()
    assert Project.is_project(project.root) and not Project.is_project(slides)
    assert project.ids == ["a.png", "b.jpg", "c.tif"]
    assert project.classes == ["background", "foreground"]
    assert project.unannotated_ids() == project.ids and project.annotated_ids() == []
    data = json.loads((project.root / MANIFEST_NAME).read_text())
    assert data["format"] == "s4mi-project" and data["version"] == 1
    assert data["slides_dir"] == ".."
    assert data["multi_label"] is False and data["channel_axis"] is None
    assert data["slides"][0] == {"id": "a.png", "annotated": False, "split": None, "group": None}
    assert (project.root / "masks").is_dir()
    assert project.runs_dir == project.root / "runs" and project.runs_dir.is_dir()
    assert _tree_hash(slides) == before


def test_read_only_slide_folder_needs_a_project_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    slides = _slide_folder(tmp_path / "slides")
    before = _tree_hash(slides, skip="never")
    real_access = os.access

    def access(path, mode, *args, **kwargs):
        if Path(path).resolve() == slides.resolve() and mode & os.W_OK:
            return False
        return real_access(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)
    with pytest.raises(ProjectError, match="read-only.*--project") as err:
        Project.create(slides)
    assert str(slides) in str(err.value)
    project = Project.create(slides, project_dir=tmp_path / "elsewhere")
    project.save_mask("a.png", _binary_mask(value=1))
    project.set_annotated("a.png")
    assert _tree_hash(slides, skip="never") == before  # nothing written into the slide folder, not even .s4mi


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can write into a 0o555 folder")
def test_chmod_read_only_slide_folder(tmp_path: Path) -> None:
    slides = _slide_folder(tmp_path / "slides")
    slides.chmod(0o555)
    try:
        with pytest.raises(ProjectError, match="read-only"):
            Project.create(slides)
        Project.create(slides, project_dir=tmp_path / "project")
    finally:
        slides.chmod(0o755)


def test_empty_and_missing_folders(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no slides here")
    with pytest.raises(ProjectError, match="no PNG/JPEG/BMP/TIFF slides in .*empty"):
        Project.create(empty)
    assert not (empty / ".s4mi").exists()
    with pytest.raises(ProjectError, match="nowhere"):
        Project.create(tmp_path / "nowhere")
    with pytest.raises(ProjectError, match="not a napari-s4mi project"):
        Project.open(tmp_path)


def test_reopen_and_create_again(tmp_path: Path) -> None:
    slides = _slide_folder(tmp_path / "slides")
    project = Project.create(slides, tmp_path / "proj", classes=("background", "tumour", "stroma"), channel_axis=0)
    project.save_mask("b.jpg", np.ones((12, 16), np.uint8) * 2)
    project.set_annotated("b.jpg")
    again = Project.open(tmp_path / "proj")
    assert again.classes == ["background", "tumour", "stroma"]
    assert again.channel_axis == 0
    assert again.record("b.jpg") == SlideRecord("b.jpg", annotated=True)
    np.testing.assert_array_equal(again.read_mask("b.jpg"), np.full((12, 16), 2))
    reopened = Project.create(slides, tmp_path / "proj")  # an existing manifest is opened, not replaced
    assert reopened.annotated_ids() == ["b.jpg"] and reopened.classes == again.classes
    other = _slide_folder(tmp_path / "other", names=("z.png",))
    with pytest.raises(ProjectError, match="belongs to the slides"):
        Project.create(other, tmp_path / "proj")


def test_moving_project_and_slides_together(tmp_path: Path) -> None:
    base = tmp_path / "study"
    slides = _slide_folder(base / "slides")
    project = Project.create(slides, base / "project")
    project.save_mask("a.png", _binary_mask(value=1))
    project.set_annotated("a.png")
    default = Project.create(slides)  # the default .s4mi inside the slide folder moves with it too
    default.save_mask("c.tif", _binary_mask(value=1))
    shutil.move(str(base), str(tmp_path / "moved"))
    moved = Project.open(tmp_path / "moved" / "project")
    assert moved.slides_dir == (tmp_path / "moved" / "slides").resolve()
    assert moved.annotated_ids() == ["a.png"]
    assert moved.open_slide("a.png").read().shape == (12, 16, 3)
    moved_default = Project.open(tmp_path / "moved" / "slides" / ".s4mi")
    assert moved_default.has_mask("c.tif")


def test_project_moved_alone_falls_back_to_absolute_slides_path(tmp_path: Path) -> None:
    slides = _slide_folder(tmp_path / "slides")
    Project.create(slides, tmp_path / "a" / "project")
    shutil.move(str(tmp_path / "a" / "project"), str(tmp_path / "project2"))
    assert Project.open(tmp_path / "project2").slides_dir == slides.resolve()


def test_missing_slide_folder(tmp_path: Path) -> None:
    slides = _slide_folder(tmp_path / "slides")
    Project.create(slides, tmp_path / "project")
    shutil.rmtree(slides)
    with pytest.raises(ProjectError, match="slide folder not found"):
        Project.open(tmp_path / "project")


# ------------------------------------------------------------------------------------------------- manifests


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "",
        json.dumps({"format": "something-else", "version": 1}),
        json.dumps({"format": "s4mi-project", "version": 1, "slides_dir": "..", "classes": []}),
        json.dumps({"format": "s4mi-project", "version": 1, "slides_dir": "..", "classes": ["bg"], "slides": [{}]}),
        json.dumps(
            {
                "format": "s4mi-project",
                "version": 1,
                "slides_dir": "..",
                "classes": ["bg"],
                "slides": [{"id": "a.png", "split": "holiday"}],
            }
        ),
        json.dumps(
            {
                "format": "s4mi-project",
                "version": 1,
                "slides_dir": "..",
                "classes": ["bg"],
                "slides": [{"id": "../x"}],
            }
        ),
    ],
)
def test_corrupt_manifest(tmp_path: Path, content: str) -> None:
    slides = _slide_folder(tmp_path / "slides")
    project = Project.create(slides)
    project.manifest_path.write_text(content)
    with pytest.raises(ProjectError, match=MANIFEST_NAME) as err:
        Project.open(project.root)
    assert "\n" not in str(err.value)


def test_newer_manifest_version(tmp_path: Path) -> None:
    project = Project.create(_slide_folder(tmp_path / "slides"))
    data = json.loads(project.manifest_path.read_text())
    data["version"] = 99
    project.manifest_path.write_text(json.dumps(data))
    with pytest.raises(ProjectError, match="upgrade"):
        Project.open(project.root)


def test_unknown_manifest_keys_survive_a_save(tmp_path: Path) -> None:
    project = Project.create(_slide_folder(tmp_path / "slides"))
    data = json.loads(project.manifest_path.read_text())
    data["image_labels"] = {"a.png": ["nevus"]}
    project.manifest_path.write_text(json.dumps(data))
    reopened = Project.open(project.root)
    reopened.save_mask("a.png", _binary_mask(value=1))
    reopened.set_annotated("a.png")
    assert json.loads(project.manifest_path.read_text())["image_labels"] == {"a.png": ["nevus"]}


# ------------------------------------------------------------------------------------------------- refresh


def test_refresh_adds_and_drops_slides_but_keeps_masks(tmp_path: Path) -> None:
    slides = _slide_folder(tmp_path / "slides")
    project = Project.create(slides, tmp_path / "project")
    project.save_mask("a.png", _binary_mask(value=1))
    project.set_annotated("a.png")
    _write_slide(slides / "d.bmp")
    (slides / "a.png").rename(tmp_path / "a.png")
    project.refresh()
    assert project.ids == ["b.jpg", "c.tif", "d.bmp"]
    assert project.mask_path("a.png").is_file()  # a vanished slide's mask is never deleted
    assert Project.open(project.root).ids == ["b.jpg", "c.tif", "d.bmp"]
    (tmp_path / "a.png").rename(slides / "a.png")
    back = Project.open(project.root)
    assert back.ids == ["a.png", "b.jpg", "c.tif", "d.bmp"]
    assert back.annotated_ids() == ["a.png"]  # its record came back with it


# ------------------------------------------------------------------------------------------------- masks


def test_save_mask_validates_and_does_not_annotate(tmp_path: Path) -> None:
    project = Project.create(_slide_folder(tmp_path / "slides"), tmp_path / "project")
    with pytest.raises(InputError, match=r"\(10, 16\).*\(12, 16\)"):
        project.save_mask("a.png", np.zeros((10, 16), np.uint8))
    with pytest.raises(InputError, match="label 2"):
        project.save_mask("a.png", np.full((12, 16), 2, np.uint8))
    assert not project.has_mask("a.png")
    path = project.save_mask("a.png", _binary_mask(value=1))
    assert path == project.root / "masks" / "a.png.tif"
    assert project.record("a.png").annotated is False
    np.testing.assert_array_equal(project.read_mask("a.png"), _binary_mask(value=1))
    with pytest.raises(ProjectError, match="b.jpg"):
        project.read_mask("b.jpg")
    with pytest.raises(ProjectError, match="nope.png"):
        project.save_mask("nope.png", _binary_mask(value=1))


def test_mask_path_flattens_subfolders(tmp_path: Path) -> None:
    project = Project.create(_slide_folder(tmp_path / "slides"), tmp_path / "project")
    assert project.mask_path("sub/dir/x.png") == project.root / "masks" / "sub__dir__x.png.tif"


def test_set_annotated(tmp_path: Path) -> None:
    project = Project.create(_slide_folder(tmp_path / "slides"), tmp_path / "project")
    with pytest.raises(ProjectError, match="a.png.*no mask"):
        project.set_annotated("a.png")
    project.save_mask("a.png", _binary_mask(value=1))
    project.set_annotated("a.png")
    assert Project.open(project.root).annotated_ids() == ["a.png"]
    project.set_annotated("a.png", False)
    assert Project.open(project.root).annotated_ids() == []


def test_failed_save_keeps_manifest_and_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = Project.create(_slide_folder(tmp_path / "slides"), tmp_path / "project")
    project.save_mask("a.png", _binary_mask(value=1))
    before = project.manifest_path.read_bytes()

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    masks_before = _tree_hash(project.masks_dir)
    monkeypatch.setattr(project_base, "atomic_write_text", full_disk)
    with pytest.raises(OSError):
        project.set_annotated("a.png")
    assert project.record("a.png").annotated is False
    imported = {
        "a_mask.png": _binary_mask(),
        "b_mask.png": _binary_mask(),
        "c.png": np.full((12, 16), 7, np.uint8),
    }
    with pytest.raises(OSError):
        project.import_masks(_masks_folder(tmp_path / "m", imported), overwrite=True, mask_values={255: 1, 7: 2})
    assert project.classes == ["background", "foreground"] and project.annotated_ids() == []
    assert project.manifest_path.read_bytes() == before
    assert _tree_hash(project.masks_dir) == masks_before  # a.png's mask restored, b's and c's removed
    assert sorted(p.name for p in project.masks_dir.iterdir()) == ["a.png.tif"]


# ------------------------------------------------------------------------------------------------- import


def _masks_folder(folder: Path, masks: dict[str, np.ndarray]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, mask in masks.items():
        skio.imsave(folder / name, mask, check_contrast=False)
    return folder


def test_import_isic_style_names_binary_255(tmp_path: Path) -> None:
    slides = _slide_folder(tmp_path / "slides", names=("ISIC_0000000.jpg", "ISIC_0000001.jpg", "ISIC_0000002.jpg"))
    before = _tree_hash(slides)
    project = Project.create(slides, tmp_path / "project")
    masks = _masks_folder(
        tmp_path / "masks",
        {"ISIC_0000000_segmentation.png": _binary_mask(), "ISIC_0000002_segmentation.png": _binary_mask()},
    )
    assert project.import_masks(masks).imported == 2
    assert project.annotated_ids() == ["ISIC_0000000.jpg", "ISIC_0000002.jpg"]
    assert project.classes == ["background", "foreground"]
    mask = project.read_mask("ISIC_0000000.jpg")
    assert set(np.unique(mask)) == {0, 1}
    np.testing.assert_array_equal(mask, _binary_mask(value=1))
    assert Project.open(project.root).annotated_ids() == ["ISIC_0000000.jpg", "ISIC_0000002.jpg"]
    assert _tree_hash(slides) == before


def test_import_same_stem_and_mask_suffix(tmp_path: Path) -> None:
    project = Project.create(_slide_folder(tmp_path / "slides"), tmp_path / "project")
    masks = _masks_folder(tmp_path / "labels", {"a.png": _binary_mask(value=1), "b_mask.tif": _binary_mask(value=1)})
    (tmp_path / "labels" / "notes.txt").write_text("ignored")
    assert project.import_masks(masks, mark_annotated=False).imported == 2
    assert project.annotated_ids() == []
    assert project.has_mask("a.png") and project.has_mask("b.jpg") and not project.has_mask("c.tif")


def test_import_class_ids_extend_classes_only_when_mapped(tmp_path: Path) -> None:
    """Values that are not class ids are an error (they used to add classes silently); --mask-values adds them."""
    project = Project.create(_slide_folder(tmp_path / "slides"), tmp_path / "project")
    multi = np.zeros((12, 16), np.uint8)
    multi[:4], multi[4:8] = 1, 3
    masks = _masks_folder(tmp_path / "masks", {"a.png": multi, "b.png": _binary_mask(value=1)})
    with pytest.raises(InputError, match=r"a\.png: mask values 0, 1, 3: 3 not class ids"):
        project.import_masks(masks)
    with pytest.raises(InputError, match="skip 2"):
        project.import_masks(masks, mask_values={3: 3})
    assert project.classes == ["background", "foreground"] and not project.has_mask("a.png")
    assert project.import_masks(masks, mask_values="3:2").imported == 2
    assert project.classes == ["background", "foreground", "class_2"]
    np.testing.assert_array_equal(project.read_mask("a.png"), np.where(multi == 3, 2, multi))


def test_import_shape_mismatch_leaves_project_intact(tmp_path: Path) -> None:
    project = Project.create(_slide_folder(tmp_path / "slides"), tmp_path / "project")
    project.save_mask("c.tif", np.zeros((12, 16), np.uint8))
    manifest = project.manifest_path.read_bytes()
    masks_before = _tree_hash(project.masks_dir)
    masks = _masks_folder(tmp_path / "masks", {"a_mask.png": _binary_mask(), "b_mask.png": _binary_mask(10, 16)})
    with pytest.raises(InputError) as err:
        project.import_masks(masks)
    message = str(err.value)
    assert "b_mask.png" in message and "b.jpg" in message and "(10, 16)" in message and "(12, 16)" in message
    assert project.manifest_path.read_bytes() == manifest
    assert _tree_hash(project.masks_dir) == masks_before
    assert sorted(p.name for p in project.masks_dir.iterdir()) == ["c.tif.tif"]
    assert Project.open(project.root).annotated_ids() == [] and project.annotated_ids() == []


def test_import_keeps_existing_masks_unless_overwrite(tmp_path: Path) -> None:
    project = Project.create(_slide_folder(tmp_path / "slides"), tmp_path / "project")
    painted = np.zeros((12, 16), np.uint8)
    painted[0, 0] = 1
    project.save_mask("a.png", painted)
    masks = _masks_folder(tmp_path / "masks", {"a.png": _binary_mask(), "b.png": _binary_mask()})
    assert project.import_masks(masks).imported == 1
    np.testing.assert_array_equal(project.read_mask("a.png"), painted)
    summary = project.import_masks(masks, overwrite=True)  # only the mask that differs is written again
    assert (summary.added, summary.changed, summary.unchanged) == ((), ("a.png",), ("b.jpg",))
    np.testing.assert_array_equal(project.read_mask("a.png"), _binary_mask(value=1))


def test_import_errors(tmp_path: Path) -> None:
    project = Project.create(_slide_folder(tmp_path / "slides"), tmp_path / "project")
    with pytest.raises(InputError, match="nowhere"):
        project.import_masks(tmp_path / "nowhere")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a_mask.png").write_text("text, not a mask")
    with pytest.raises(InputError, match="a_mask.png"):
        project.import_masks(bad)
    assert project.import_masks(tmp_path / "slides").imported == 0  # a slide is never its own mask


@pytest.mark.skipif(not ISIC.is_dir(), reason="shared ISIC 2017 data not present")
def test_import_real_isic_masks(tmp_path: Path) -> None:
    slides = tmp_path / "slides"
    slides.mkdir()
    names = sorted(p.name for p in (ISIC / "images").glob("ISIC_*.jpg"))[:5]
    for name in names:
        os.symlink(ISIC / "images" / name, slides / name)
    project = Project.create(slides, project_dir=tmp_path / "project")
    assert project.import_masks(ISIC / "masks").imported == 5
    assert project.annotated_ids() == names
    for name in names:
        mask = project.read_mask(name)
        assert mask.shape == project.open_slide(name).shape
        assert set(np.unique(mask)) <= {0, 1} and mask.any()


# ------------------------------------------------------------------------------------------------- splits


def _annotated_project(tmp_path: Path, n: int) -> Project:
    names = tuple(f"s{k:02d}.png" for k in range(n))
    slides = _slide_folder(tmp_path / "slides", names=names, h=4, w=4)
    project = Project.create(slides, tmp_path / "project")
    masks = _masks_folder(tmp_path / "masks", {name: np.zeros((4, 4), np.uint8) for name in names})
    project.import_masks(masks)
    return project


def test_splits_by_slide(tmp_path: Path) -> None:
    project = _annotated_project(tmp_path, 10)
    counts = project.assign_splits(val_fraction=0.2, test_fraction=0.1, seed=3)
    assert counts == {"train": 7, "val": 2, "test": 1}
    first = {i: project.record(i).split for i in project.ids}
    assert Project.open(project.root).record("s00.png").split == first["s00.png"]
    project.assign_splits(val_fraction=0.5, seed=99)  # existing splits are kept unless overwrite
    assert {i: project.record(i).split for i in project.ids} == first
    project.assign_splits(val_fraction=0.2, test_fraction=0.1, seed=3, overwrite=True)
    assert {i: project.record(i).split for i in project.ids} == first  # same seed, same split
    with pytest.raises(ProjectError, match="val_fraction"):
        project.assign_splits(val_fraction=0.7, test_fraction=0.4)


def test_splits_only_annotated(tmp_path: Path) -> None:
    project = _annotated_project(tmp_path, 4)
    project.set_annotated("s03.png", False)
    project.assign_splits(val_fraction=0.3, seed=0)
    assert project.record("s03.png").split is None
    assert sorted(project.annotated_ids("train") + project.annotated_ids("val")) == [
        "s00.png",
        "s01.png",
        "s02.png",
    ]
    assert len(project.annotated_ids("val")) == 1


@pytest.mark.parametrize("seed", range(8))
def test_groups_never_span_two_splits(tmp_path: Path, seed: int) -> None:
    project = _annotated_project(tmp_path, 12)
    rng = np.random.default_rng(seed)
    groups = {f"s{k:02d}": f"patient{rng.integers(0, 5)}" for k in range(12)}  # keyed by stem
    counts = project.assign_splits(val_fraction=0.25, test_fraction=0.2, seed=seed, groups=groups)
    assert sum(counts.values()) == 12 and counts["train"] > 0
    by_group: dict[str, set[str]] = {}
    for rec in project.slides:
        assert rec.group == groups[rec.id[:-4]]
        by_group.setdefault(rec.group, set()).add(rec.split)
    assert all(len(splits) == 1 for splits in by_group.values()), by_group


def test_new_group_members_follow_their_group(tmp_path: Path) -> None:
    project = _annotated_project(tmp_path, 6)
    project.record("s00.png").split = "val"
    groups = {f"s{k:02d}.png": "p1" if k < 3 else f"q{k}" for k in range(6)}
    project.assign_splits(val_fraction=0.2, seed=0, groups=groups)
    assert {project.record(f"s0{k}.png").split for k in range(3)} == {"val"}


def test_load_groups_csv(tmp_path: Path) -> None:
    path = tmp_path / "groups.csv"
    path.write_text("Image,Patient,age\nISIC_0000000,p1,40\nISIC_0000001,p1,41\nISIC_0000002, p2 ,50\n,p9,1\n")
    assert load_groups_csv(path) == {"ISIC_0000000": "p1", "ISIC_0000001": "p1", "ISIC_0000002": "p2"}
    bad = tmp_path / "bad.csv"
    bad.write_text("name,age\nx,1\n")
    with pytest.raises(InputError, match="bad.csv"):
        load_groups_csv(bad)
    with pytest.raises(InputError, match="missing.csv"):
        load_groups_csv(tmp_path / "missing.csv")
