"""Fault injection on the project and data side: bad mask values, lossy and empty masks, re-import, a corrupt or
re-created manifest, unreadable files, file names at the file system's limit and a one-class manifest. Each case
checks the one-line message and that slides, manifest and masks are byte-identical afterwards where they should be.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
from conftest import SAMPLE, TINY_CNN, TINY_SWIN, tiny_config
from PIL import Image

from napari_s4mi.cli import main
from napari_s4mi.core.atomic import atomic_write_bytes
from napari_s4mi.core.errors import InputError, ProjectError, S4MIError
from napari_s4mi.core.project import MANIFEST_NAME, Project, mask_import, rebuild_project
from napari_s4mi.core.project import base as project_base
from napari_s4mi.core.sample import HELD_BACK, create_sample_project

TINY = ["--iterations", "2", "--input-size", "64", "--labeled-batch", "2", "--unlabeled-batch", "2"]
TINY += ["--precision", "fp32", "--device", "cpu", "--weights", "none"]
STRAY = "ISIC_0000113_segmentation.png"


def tree(folder: Path) -> dict[str, str]:
    """Digest of every file under ``folder``, hidden ones included: what must stay byte-identical."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def state(project: Project) -> tuple[bytes, dict[str, str]]:
    """The manifest's bytes and the masks folder's digests."""
    return project.manifest_path.read_bytes(), tree(project.masks_dir)


def mask_copies(folder: Path) -> Path:
    """A writable copy of the sample masks (0/255 PNGs)."""
    shutil.copytree(SAMPLE / "masks", folder)
    return folder


def put_stray_value(path: Path, value: int = 3) -> None:
    """One foreground pixel of a 0/255 mask set to ``value``."""
    mask = np.asarray(Image.open(path)).copy()
    y, x = np.argwhere(mask == 255)[0]
    mask[y, x] = value
    Image.fromarray(mask).save(path)


def change(path: Path) -> None:
    """A corrected mask: its top-left 10x10 block inverted."""
    mask = np.asarray(Image.open(path)).copy()
    mask[:10, :10] = 255 - mask[:10, :10]
    Image.fromarray(mask).save(path)


def slides_tree(images: Path) -> dict[str, str]:
    """Digests of the slide folder without the project inside it."""
    return {k: v for k, v in tree(images).items() if not k.startswith(".s4mi")}


def one_error_line(code: int, err: str) -> str:
    """The CLI ended with exit code 2, one ``s4mi: error:`` line and no traceback; returns that line."""
    lines = [line for line in err.splitlines() if line.startswith("s4mi: error: ")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """The sample project: 8 slides with masks, the 2 held-back slides without."""
    return create_sample_project(tmp_path / "project")


@pytest.fixture
def tiny_networks(monkeypatch):
    """The cpu-small preset with the tiny test networks (the CLI flags set the rest)."""
    import napari_s4mi.core.seg_config as seg_config

    monkeypatch.setattr(seg_config, "unet_spec", lambda encoder: dict(TINY_CNN))
    monkeypatch.setattr(seg_config, "swin_spec", lambda embed_dim, heads: dict(TINY_SWIN))


# ------------------------------------------------------------------------------------------------- mask values


def test_stray_value_is_an_error_not_a_256_class_project(project: Project, tmp_path: Path) -> None:
    masks = mask_copies(tmp_path / "masks")
    put_stray_value(masks / STRAY)
    before = state(project)
    with pytest.raises(InputError) as err:
        project.import_masks(masks, replace=True)
    message = str(err.value)
    assert STRAY in message and "mask values 0, 3, 255: 3, 255 not class ids" in message
    assert "0 background, 1 foreground" in message and "--mask-values 255:1,3:0" in message
    assert state(project) == before and project.classes == ["background", "foreground"]
    assert Project.open(project.root).classes == ["background", "foreground"]

    summary = project.import_masks(masks, replace=True, mask_values="255:1,3:0")
    assert project.classes == ["background", "foreground"]
    assert set(summary.added) == set(HELD_BACK) and summary.changed == ("ISIC_0000113.jpg",)
    assert len(summary.unchanged) == 7
    assert set(np.unique(project.read_mask("ISIC_0000113.jpg"))) == {0, 1}


def test_mask_values_are_parsed_strictly(project: Project, tmp_path: Path) -> None:
    masks = mask_copies(tmp_path / "masks")
    before = state(project)
    for bad, needle in [("255-1", "is not VALUE:CLASS"), ("255:1,255:2", "mapped twice"), ("255:3", "skip 2")]:
        with pytest.raises(InputError, match=needle):
            project.import_masks(masks, replace=True, mask_values=bad)
    assert state(project) == before


@pytest.mark.parametrize("kind", ["jpeg-suffix", "jpeg-named-png"])
def test_lossy_masks_are_refused_with_the_reason(project: Project, tmp_path: Path, kind: str) -> None:
    masks = mask_copies(tmp_path / "masks")
    source = masks / "ISIC_0000124_segmentation.png"
    target = source.with_suffix(".jpg") if kind == "jpeg-suffix" else source
    Image.open(source).convert("L").save(target, format="JPEG", quality=90)
    if target != source:
        source.unlink()
    before = state(project)
    with pytest.raises(InputError) as err:
        project.import_masks(masks)
    assert f"{target}: lossy mask refused: JPEG compression changes label values" in str(err.value)
    assert "export the masks as PNG or TIFF" in str(err.value)
    assert state(project) == before and project.annotated_ids() == Project.open(project.root).annotated_ids()


def test_lossy_tiff_mask_is_refused(project: Project, tmp_path: Path) -> None:
    pytest.importorskip("imagecodecs")
    masks = tmp_path / "masks"
    masks.mkdir()
    data = np.asarray(Image.open(SAMPLE / "masks" / "ISIC_0000124_segmentation.png"))
    tifffile.imwrite(masks / "ISIC_0000124.tif", data, compression="jpeg")
    with pytest.raises(InputError, match="lossy JPEG compression"):
        project.import_masks(masks)


def test_cli_stray_value_is_one_line(tmp_path: Path, capsys) -> None:
    shutil.copytree(SAMPLE / "images", tmp_path / "images")
    masks = mask_copies(tmp_path / "masks")
    put_stray_value(masks / STRAY)
    slides, mask_files = tree(tmp_path / "images"), tree(masks)
    code = main(["train", "seg", "--images", str(tmp_path / "images"), "--masks", str(masks)] + TINY_OUT(tmp_path))
    line = one_error_line(code, capsys.readouterr().err)
    assert STRAY in line and "3, 255" in line and "--mask-values 255:1,3:0" in line
    project = Project.open(tmp_path / "images" / ".s4mi")
    assert project.annotated_ids() == [] and not any(project.masks_dir.iterdir())
    assert slides_tree(tmp_path / "images") == slides and tree(masks) == mask_files
    assert not (tmp_path / "run").exists()


def TINY_OUT(tmp_path: Path) -> list[str]:  # noqa: N802 (reads like the constant it extends)
    return ["--out", str(tmp_path / "run"), *TINY]


def test_cli_mask_values_unreadable_file_and_replace(tmp_path: Path, capsys, tiny_networks) -> None:
    """One real (tiny) run: --mask-values maps the stray value, an unreadable file is reported and left out."""
    images = tmp_path / "images"
    shutil.copytree(SAMPLE / "images", images)
    (images / "notes.png").write_text("not a picture")
    masks = mask_copies(tmp_path / "masks")
    put_stray_value(masks / STRAY)
    args = ["train", "seg", "--images", str(images), "--masks", str(masks), "--mask-values", "255:1,3:0"]
    code = main(args + TINY_OUT(tmp_path))
    err = capsys.readouterr().err
    assert code == 0 and "Traceback" not in err, err
    assert f"{images / 'notes.png'}: left out, not a readable slide: not a readable image" in err
    assert "10 added, 0 changed, 0 unchanged" in err
    project = Project.open(images / ".s4mi")
    assert "notes.png" not in project.ids and set(project.unreadable) == {"notes.png"}

    shutil.copy(SAMPLE / "masks" / STRAY, masks / STRAY)  # corrected: the stray pixel is foreground again
    Image.fromarray(np.zeros((256, 256), np.uint8)).save(masks / "ISIC_0000124_segmentation.png")  # now empty
    before = project.read_mask("ISIC_0000113.jpg")
    code = main(["train", "seg", "--project", str(project.root), "--masks", str(masks), "--replace", "--mask-values",
                 "255:1", "--out", str(tmp_path / "run2"), *TINY])  # fmt: skip
    captured = capsys.readouterr()
    err = captured.err + captured.out  # the engine's messages come above the progress bar, on stdout
    assert code == 0 and "0 added, 2 changed, 8 unchanged (1 of them empty: background only)" in err, err
    empty = [line for line in err.splitlines() if "are empty (background only)" in line]
    assert len(empty) == 1 and empty[0].startswith("warning: 1 of ") and "ISIC_0000124.jpg" in empty[0], err
    after = Project.open(project.root).read_mask("ISIC_0000113.jpg")
    assert (after != before).sum() == 1 and after.max() == 1


def test_cli_replace_needs_masks(project: Project, tmp_path: Path, capsys) -> None:
    code = main(["train", "seg", "--project", str(project.root), "--replace"] + TINY_OUT(tmp_path))
    assert "give --masks DIR" in one_error_line(code, capsys.readouterr().err)


# ------------------------------------------------------------------------------------------------- empty masks


def test_empty_masks_are_counted_on_import(project: Project, tmp_path: Path) -> None:
    masks = mask_copies(tmp_path / "masks")
    for name in ("ISIC_0000124_segmentation.png", "ISIC_0000126_segmentation.png"):
        Image.fromarray(np.zeros((256, 256), np.uint8)).save(masks / name)
    summary = project.import_masks(masks)
    assert summary.empty == HELD_BACK and "(2 of them empty: background only)" in str(summary)
    assert len(summary.warnings()) == 1 and summary.warnings()[0].startswith(f"all 2 masks from {masks} are empty")
    summary = project.import_masks(masks, replace=True)
    assert summary.warnings() == ["2 of 10 masks are empty (background only): ISIC_0000124.jpg, ISIC_0000126.jpg"]


def test_all_background_training_set_is_warned_once(project: Project, tmp_path: Path) -> None:
    from napari_s4mi.core.tasks.segmentation import SegmentationData

    for slide_id in project.annotated_ids():
        project.save_mask(slide_id, np.zeros((256, 256), np.uint8))
    data = SegmentationData(project, tiny_config())
    empty = [m for m in data.messages if "empty" in m]
    n = len(data.plan.labeled)
    assert len(empty) == 1 and empty[0].startswith(f"all {n} labeled training masks are empty (background only)")
    assert "IoU will be 0" in empty[0]

    project.save_mask(data.plan.labeled[0], np.ones((256, 256), np.uint8))
    data = SegmentationData(project, tiny_config())
    empty = [m for m in data.messages if "empty" in m]
    assert len(empty) == 1 and empty[0].startswith(f"{n - 1} of {n} labeled training masks and ")


def test_project_mask_with_a_value_outside_the_classes_stops_training(project: Project, tmp_path: Path) -> None:
    from napari_s4mi.core.tasks.segmentation import SegmentationData

    path = project.mask_path("ISIC_0000112.jpg")
    mask = project.read_mask("ISIC_0000112.jpg")
    mask[:5] = 7
    tifffile.imwrite(path, mask)  # changed behind the project's back
    with pytest.raises(InputError) as err:
        SegmentationData(project, tiny_config())
    assert str(err.value).startswith(f"{path}: mask values 0, 1, 7 but the project's classes are 0 background")
    assert "--mask-values" in str(err.value)


# ------------------------------------------------------------------------------------------------- re-import


def test_reimport_without_replace_keeps_masks_and_says_so(project: Project, tmp_path: Path) -> None:
    masks = mask_copies(tmp_path / "masks")
    before = tree(project.masks_dir)
    summary = project.import_masks(masks)
    assert set(summary.added) == set(HELD_BACK) and len(summary.kept) == 8
    assert "8 kept as they were (their slides have a mask; --replace updates them)" in str(summary)
    assert {k: v for k, v in tree(project.masks_dir).items() if k in before} == before


def test_reimport_replace_rolls_back_when_a_swap_fails(project: Project, tmp_path: Path, monkeypatch) -> None:
    masks = mask_copies(tmp_path / "masks")
    change(masks / "ISIC_0000112_segmentation.png")
    change(masks / "ISIC_0000116_segmentation.png")
    before = state(project)
    real_swap, swapped = mask_import._swap_in, []

    def swap_then_fail(staged, target, backups):
        real_swap(staged, target, backups)
        swapped.append(target)
        if len(swapped) == 2:  # two changed masks swapped in, their old ones aside; the added ones still staged
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(mask_import, "_swap_in", swap_then_fail)
    with pytest.raises(OSError):
        project.import_masks(masks, replace=True)
    assert len(swapped) == 2
    assert state(project) == before  # old masks back, no staged or aside file left
    assert Project.open(project.root).annotated_ids() == project.annotated_ids()


def test_reimport_replace_manifest_failure_restores_masks(project: Project, tmp_path: Path, monkeypatch) -> None:
    masks = mask_copies(tmp_path / "masks")
    change(masks / "ISIC_0000112_segmentation.png")
    before = state(project)

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(project_base, "atomic_write_text", full_disk)
    with pytest.raises(OSError):
        project.import_masks(masks, replace=True)
    assert state(project) == before and len(project.annotated_ids()) == 8


# ------------------------------------------------------------------------------------------------- rebuild


def _label_two_slides(project: Project) -> None:
    project.set_label_classes(["nevus", "melanoma"])
    project.set_labels("ISIC_0000112.jpg", ["melanoma"])
    project.set_labels("ISIC_0000113.jpg", ["nevus"])


def test_rebuild_after_a_truncated_manifest(project: Project, tmp_path: Path, capsys) -> None:
    _label_two_slides(project)
    project.assign_splits(val_fraction=0.25, seed=1)
    splits = {i: project.record(i).split for i in project.ids}
    text = project.manifest_path.read_bytes()
    corrupt = text[: len(text) * 2 // 3]
    project.manifest_path.write_bytes(corrupt)
    masks = tree(project.masks_dir)
    with pytest.raises(ProjectError, match="s4mi project rebuild --project"):
        Project.open(project.root)

    assert main(["project", "rebuild", "--project", str(project.root)]) == 0
    out = capsys.readouterr().out
    assert "10 slides, 8 annotated (they have a mask file)" in out
    aside = sorted(project.root.glob(f"{MANIFEST_NAME}.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == corrupt and aside[0].name in out
    rebuilt = Project.open(project.root)
    assert tree(project.masks_dir) == masks
    assert set(rebuilt.annotated_ids()) == set(project.annotated_ids())
    assert set(rebuilt.label_schema.classes) == {"nevus", "melanoma"}  # read from the records when cut off
    assert rebuilt.record("ISIC_0000112.jpg").labels == ["melanoma"]  # early records survive the truncation
    assert rebuilt.record("ISIC_0000113.jpg").labels == ["nevus"]
    recovered = [i for i in rebuilt.ids if rebuilt.record(i).split is not None]
    assert recovered and all(rebuilt.record(i).split == splits[i] for i in recovered)


def test_rebuild_after_the_manifest_was_created_again(project: Project) -> None:
    annotated = project.annotated_ids()
    masks = tree(project.masks_dir)
    project.manifest_path.unlink()
    fresh = Project.create(project.slides_dir, project_dir=project.root)  # what a user does, losing the flags
    assert fresh.annotated_ids() == []
    recreated = fresh.manifest_path.read_bytes()
    rebuilt, summary = rebuild_project(project.root)
    assert rebuilt.annotated_ids() == annotated and tree(project.masks_dir) == masks
    assert summary.kept_aside is not None and summary.kept_aside.name.startswith(f"{MANIFEST_NAME}.before-rebuild-")
    assert summary.kept_aside.read_bytes() == recreated


def test_rebuild_without_a_manifest_needs_the_slides(project: Project, tmp_path: Path, capsys) -> None:
    project.manifest_path.unlink()
    masks = tree(project.masks_dir)
    line = one_error_line(main(["project", "rebuild", "--project", str(project.root)]), capsys.readouterr().err)
    assert "the slide folder is not known" in line and "--images DIR" in line
    assert not project.manifest_path.exists()
    assert main(["project", "rebuild", "--project", str(project.root), "--images", str(SAMPLE / "images")]) == 0
    assert len(Project.open(project.root).annotated_ids()) == 8 and tree(project.masks_dir) == masks
    assert not list(project.root.glob(f"{MANIFEST_NAME}.*"))  # nothing to keep aside


def test_rebuild_keeps_unreadable_masks_unannotated(project: Project) -> None:
    path = project.mask_path("ISIC_0000112.jpg")
    path.write_bytes(b"II*\x00garbage")
    _, summary = rebuild_project(project.root)
    assert summary.bad_masks == ("ISIC_0000112.jpg",) and summary.annotated == 7
    assert path.read_bytes() == b"II*\x00garbage"


# ------------------------------------------------------------------------------------------------- unreadable


def test_unreadable_files_are_listed_not_slides(tmp_path: Path) -> None:
    images = tmp_path / "images"
    shutil.copytree(SAMPLE / "images", images)
    (images / "notes.png").write_text("not a picture")
    (images / "empty.jpg").write_bytes(b"")
    slides = tree(images)
    project = Project.create(images, project_dir=tmp_path / "project")
    assert "notes.png" not in project.ids and "empty.jpg" not in project.ids and len(project.ids) == 10
    assert project.unreadable["notes.png"].startswith("not a readable image")
    assert project.unreadable["empty.jpg"].startswith("empty file (0 bytes)")
    saved = json.loads(project.manifest_path.read_text())["unreadable_files"]
    assert {item["id"] for item in saved} == {"notes.png", "empty.jpg"}
    manifest = project.manifest_path.read_bytes()
    assert Project.open(project.root).unreadable == project.unreadable
    assert project.manifest_path.read_bytes() == manifest  # reopening probes again but writes nothing
    shutil.copy(images / "ISIC_0000112.jpg", images / "empty.jpg")  # the file is fixed
    reopened = Project.open(project.root)
    assert "empty.jpg" in reopened.ids and set(reopened.unreadable) == {"notes.png"}
    assert {k: v for k, v in tree(images).items() if k != "empty.jpg"} == {
        k: v for k, v in slides.items() if k != "empty.jpg"
    }


# ------------------------------------------------------------------------------------------------- long names


def test_long_names_end_in_one_line_and_leave_nothing(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    long_name = "s" * 249 + ".png"  # 253 bytes: fits, but its mask name (+ ".tif") does not
    shutil.copy(SAMPLE / "images" / "ISIC_0000112.jpg", images / "short.jpg")
    Image.open(SAMPLE / "images" / "ISIC_0000113.jpg").save(images / long_name)
    project = Project.create(images, project_dir=tmp_path / "project")
    assert long_name in project.ids
    before = state(project)
    with pytest.raises(InputError) as err:
        project.save_mask(long_name, np.zeros((256, 256), np.uint8))
    assert "file name too long (257 bytes; this file system allows 255)" in str(err.value)
    assert "rename the slide" in str(err.value)
    masks = tmp_path / "masks"
    masks.mkdir()
    shutil.copy(SAMPLE / "masks" / "ISIC_0000113_segmentation.png", masks / long_name)
    with pytest.raises(InputError, match="file name too long"):
        project.import_masks(masks)
    assert state(project) == before  # no mask, no temporary file

    atomic_write_bytes(tmp_path / ("y" * 250), b"fits")  # the temporary name is short whatever the target's
    assert (tmp_path / ("y" * 250)).read_bytes() == b"fits"
    with pytest.raises(S4MIError, match="file name too long"):
        atomic_write_bytes(tmp_path / ("z" * 300), b"too long")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["images", "masks", "project", "y" * 250])


def test_cli_long_mask_name_is_one_line(tmp_path: Path, capsys) -> None:
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    long_name = "s" * 249 + ".png"
    Image.open(SAMPLE / "images" / "ISIC_0000113.jpg").save(images / long_name)
    shutil.copy(SAMPLE / "masks" / "ISIC_0000113_segmentation.png", masks / long_name)
    code = main(["train", "seg", "--images", str(images), "--masks", str(masks)] + TINY_OUT(tmp_path))
    assert "file name too long" in one_error_line(code, capsys.readouterr().err)
    assert not any((images / ".s4mi" / "masks").iterdir())


# ------------------------------------------------------------------------------------------------- one class


def test_one_class_manifest_is_one_line(project: Project, tmp_path: Path, capsys) -> None:
    data = json.loads(project.manifest_path.read_text())
    data["classes"] = ["background"]
    project.manifest_path.write_text(json.dumps(data, indent=2))
    before = state(project)
    code = main(["train", "seg", "--project", str(project.root)] + TINY_OUT(tmp_path))
    line = one_error_line(code, capsys.readouterr().err)
    assert "hold only the background" in line and '"classes"' in line
    assert state(project) == before

    masks = mask_copies(tmp_path / "masks")
    one_class = Project.open(project.root)
    with pytest.raises(InputError, match=r"0, 255: 255 not class ids of the project \(0 background\)"):
        one_class.import_masks(masks, replace=True)
    assert state(one_class) == before
    one_class.import_masks(masks, replace=True, mask_values="255:1")
    assert one_class.classes == ["background", "class_1"]
