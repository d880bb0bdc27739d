"""Fault injection on the runs and outputs side: predictions that would overwrite an input or each other, full and
read-only disks (a real 2 MiB tmpfs when the tests run as root, an injected ENOSPC/EROFS otherwise), SIGTERM, two
processes on one run folder, runs without a complete checkpoint, torn and truncated checkpoints, bad slides in a
batch. Each case checks the one-line message and that the inputs are byte-identical afterwards."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from conftest import SAMPLE, TINY_CNN, TINY_SWIN, slide_folder_hash, tiny_config
from PIL import Image

from napari_s4mi.cli import build_parser, main
from napari_s4mi.core import checkpoint as ckpt
from napari_s4mi.core.engine import train
from napari_s4mi.core.errors import InputError, OutputError
from napari_s4mi.core.events import CancelToken, Checkpoint, Message, Progress
from napari_s4mi.core.prediction_names import output_names
from napari_s4mi.core.run_lock import RunLock
from napari_s4mi.core.runs import read_metrics

TINY = "--iterations 2 --input-size 64 --labeled-batch 2 --unlabeled-batch 2 --device cpu --precision fp32"
TINY_ARGS = [*TINY.split(), "--weights", "none"]
SMALL_DISK = 2 * 2**20


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: on two busy cores more threads spin against each other (a run measured 15x slower)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def small_networks(monkeypatch):
    """The cpu-small preset with the tiny test networks (the CLI flags cover everything else)."""
    import napari_s4mi.core.seg_config as seg_config

    monkeypatch.setattr(seg_config, "unet_spec", lambda encoder: dict(TINY_CNN))
    monkeypatch.setattr(seg_config, "swin_spec", lambda embed_dim, heads: dict(TINY_SWIN))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(project, run folder) of a finished 2-step tiny run with validation (best/ and last/)."""
    from napari_s4mi.core.sample import create_sample_project

    base = tmp_path_factory.mktemp("trained")
    project = create_sample_project(base / "project")
    run = base / "run"
    list(train(project, tiny_config(iterations=2, val_every=1), run))
    return project, run


def copy_run(run: Path, target: Path) -> Path:
    shutil.copytree(run, target)
    return target


def project_bytes(project) -> dict[str, bytes]:
    """The manifest and every mask of a project, to show they stay as they were."""
    files = {"manifest": project.manifest_path.read_bytes()}
    files |= {f"masks/{k}": v for k, v in slide_folder_hash(project.masks_dir).items()}
    return files


def last_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("s4mi: error: "), err
    return err[-1]


def predict(run: Path, images: Path, out: Path, *extra: str) -> int:
    return main(["predict", "--run", str(run), "--images", str(images), "--out", str(out), "--device", "cpu", *extra])


def sample_slides(folder: Path, count: int = 3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for path in sorted((SAMPLE / "images").glob("*.jpg"))[:count]:
        shutil.copy(path, folder / path.name)
    return folder


# ----------------------------------------------------------------------------------------- small disks
def _mount(path: Path, options: str) -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    return done.returncode == 0


@contextlib.contextmanager
def mounted(path: Path, options: str):
    ok = _mount(path, options)
    try:
        yield ok
    finally:
        if ok:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.fixture
def full_disk(tmp_path, monkeypatch):
    """A folder on a 2 MiB file system: a real tmpfs where the tests may mount one, else ENOSPC injected."""
    path = tmp_path / "small-disk"
    with mounted(path, f"size={SMALL_DISK}") as real:
        if not real:
            path.mkdir(exist_ok=True)
            import napari_s4mi.core.disk as disk

            usage = shutil.disk_usage

            def disk_usage(where):
                found = usage(where)
                inside = str(Path(where).resolve()).startswith(str(path.resolve()))
                return found._replace(free=SMALL_DISK) if inside else found

            def posix_fallocate(fd, offset, size):
                if size > SMALL_DISK:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

            monkeypatch.setattr(disk.shutil, "disk_usage", disk_usage)
            monkeypatch.setattr(disk.os, "posix_fallocate", posix_fallocate, raising=False)
        yield path


@pytest.fixture
def read_only_dir(tmp_path, monkeypatch):
    """A read-only folder: a tmpfs mounted read-only where the tests may, else EROFS injected on mkdir."""
    path = tmp_path / "read-only"
    with mounted(path, "ro,size=1m") as real:
        if not real:
            path.mkdir(exist_ok=True)
            real_mkdir = Path.mkdir

            def mkdir(self, *args, **kwargs):
                if str(self).startswith(str(path)) and self != path:
                    raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
                return real_mkdir(self, *args, **kwargs)

            monkeypatch.setattr(Path, "mkdir", mkdir)
        yield path


def big_tiff(path: Path, side: int = 12000) -> Path:
    """A tiled, compressed side x side RGB TIFF of zeros (a few hundred KB), written tile by tile."""
    tiles = (np.zeros((512, 512, 3), np.uint8) for _ in range(((side + 511) // 512) ** 2))
    tifffile.imwrite(path, tiles, shape=(side, side, 3), dtype=np.uint8, tile=(512, 512), compression="zlib")
    return path


# ------------------------------------------------------------------------------ predictions never overwrite
def test_predict_refuses_to_overwrite_a_slide_in_its_own_folder(trained, tmp_path, capsys):
    _, run = trained
    images = sample_slides(tmp_path / "images", 2)
    Image.open(next(images.glob("*.jpg"))).save(images / "lesion.png")  # a PNG slide: its mask would be lesion.png
    before = slide_folder_hash(images)
    assert predict(run, images, images) == 2
    line = last_error(capsys)
    assert "would overwrite the slide lesion.png" in line and "--out" in line
    assert slide_folder_hash(images) == before
    assert not [p for p in images.iterdir() if p.name.startswith(".")]


def test_predict_into_the_slide_folder_when_nothing_collides(trained, tmp_path, capsys):
    _, run = trained
    images = sample_slides(tmp_path / "images", 2)
    before = slide_folder_hash(images)
    assert predict(run, images, images) == 0
    assert "predicted 2 of 2 slides" in capsys.readouterr().out
    after = slide_folder_hash(images)
    assert {k: after[k] for k in before} == before
    assert sorted(set(after) - set(before)) == sorted(f"{Path(k).stem}.png" for k in before)


def test_slides_sharing_a_stem_get_a_prediction_each(trained, tmp_path, capsys):
    _, run = trained
    images = tmp_path / "images"
    images.mkdir()
    first, second = sorted((SAMPLE / "images").glob("*.jpg"))[:2]
    shutil.copy(first, images / "a.jpg")
    Image.open(second).save(images / "a.png")
    before = slide_folder_hash(images)
    out = tmp_path / "out"
    assert predict(run, images, out, "--disagreement") == 0
    assert "predicted 2 of 2 slides" in capsys.readouterr().out
    written = sorted(p.name for p in out.iterdir())
    assert written == ["a.jpg.png", "a.jpg_disagreement.tif", "a.png.png", "a.png_disagreement.tif"]
    assert slide_folder_hash(images) == before


def test_output_names_keep_full_names_only_where_needed():
    paths = [Path("x/a.jpg"), Path("x/a.png"), Path("x/B.tif"), Path("x/b.png"), Path("x/c.png")]
    names = output_names(paths, [".png", ".tif"])
    assert names == {
        Path("x/a.jpg"): "a.jpg",
        Path("x/a.png"): "a.png",
        Path("x/B.tif"): "B.tif",  # B and b clash on case-insensitive file systems
        Path("x/b.png"): "b.png",
        Path("x/c.png"): "c",
    }
    # a slide whose stem is another's output name: t.jpg's disagreement vs the slide t_disagreement.png
    clash = output_names([Path("t.jpg"), Path("t_disagreement.png")], [".png", "_disagreement.tif", ".tif"])
    outputs = [f"{n}{s}".casefold() for n in clash.values() for s in (".png", "_disagreement.tif", ".tif")]
    assert len(outputs) == len(set(outputs))


def test_classification_predictions_use_the_same_names(tmp_path, capsys):
    """The classifier's predict_folder: colliding stems keep their file names in predictions.csv and the saliency
    maps; a bad slide is skipped and reported; an output that is a slide is refused."""
    from napari_s4mi.core.tasks.cls_predictor import ClsPredictor, SlideScores

    predictor = ClsPredictor.__new__(ClsPredictor)
    predictor.classes = ["nevus", "melanoma"]
    predictor.predict = lambda slide: SlideScores(np.array([0.25, 0.75]), ["melanoma"], 1)
    predictor.saliency = lambda slide, index, kind="gradient": np.zeros(slide.shape[:2], np.float32)
    images = tmp_path / "images"
    images.mkdir()
    first = sorted((SAMPLE / "images").glob("*.jpg"))[0]
    shutil.copy(first, images / "a.jpg")
    Image.open(first).save(images / "a.png")
    shutil.copy(first, images / "b.jpg")
    (images / "broken.png").write_text("not a picture")
    before = slide_folder_hash(images)
    slides = sorted(images.iterdir())
    (tmp_path / "out").mkdir()
    result = predictor.predict_folder(slides, tmp_path / "out", saliency="")
    assert (result.total, result.written, [p.name for p, _ in result.skipped]) == (4, 3, ["broken.png"])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("s4mi: skipped: ")]
    assert len(lines) == 1 and "broken.png" in lines[0]
    rows = (tmp_path / "out" / "predictions.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows] == ["image_id", "a.jpg", "a.png", "b"]
    assert sorted(p.name for p in (tmp_path / "out").glob("*_saliency.tif")) == [
        "a.jpg_saliency.tif",
        "a.png_saliency.tif",
        "b_saliency.tif",
    ]
    shutil.copy(first, images / "b_saliency.tif.jpg")  # harmless: its own outputs differ
    Image.open(first).save(images / "c_saliency.tif")  # a TIFF slide named like c.jpg's saliency map
    shutil.copy(first, images / "c.jpg")
    before = slide_folder_hash(images)
    with pytest.raises(InputError, match="would overwrite the slide c_saliency.tif"):
        predictor.predict_folder(sorted(p for p in images.iterdir() if p.suffix != ".png"), images, saliency="")
    assert slide_folder_hash(images) == before


# ----------------------------------------------------------------------------------- batches with bad slides
def test_a_bad_slide_is_skipped_and_the_rest_predicted(trained, tmp_path, capsys):
    _, run = trained
    images = sample_slides(tmp_path / "images", 2)
    (images / "broken.png").write_text("this is not a picture")
    good = sorted((SAMPLE / "images").glob("*.jpg"))[2].read_bytes()
    (images / "truncated.jpg").write_bytes(good[: len(good) // 3])
    before = slide_folder_hash(images)
    out = tmp_path / "out"
    assert predict(run, images, out) == 2
    captured = capsys.readouterr()
    skipped = [line for line in captured.err.splitlines() if line.startswith("s4mi: skipped: ")]
    assert len(skipped) == 2 and "broken.png" in skipped[0] and "truncated.jpg" in skipped[1]
    assert "predicted 2 of 4 slides" in captured.out and "2 skipped" in captured.out
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{p.stem}.png" for p in (SAMPLE / "images").glob("*"))[:2]
    assert slide_folder_hash(images) == before
    # --strict: the first bad slide ends the command
    assert predict(run, images, tmp_path / "strict", "--strict") == 2
    assert "broken.png" in last_error(capsys)
    assert not [p for p in (tmp_path / "strict").iterdir() if p.name.startswith(".")]


def test_training_names_every_unreadable_slide(tmp_path):
    from napari_s4mi.core.data import load_tiles
    from napari_s4mi.core.preprocess import TilingSpec
    from napari_s4mi.core.project import Project

    images = shutil.copytree(SAMPLE / "images", tmp_path / "images")  # a copy: two of its slides get broken
    project = Project.create(images)
    project.import_masks(SAMPLE / "masks")
    ids = project.annotated_ids()[:4]
    for slide_id in ids[1:3]:
        assert project.slide_path(slide_id).is_relative_to(tmp_path)
        project.slide_path(slide_id).write_bytes(b"broken")
    with pytest.raises(InputError, match=r"2 slide\(s\) cannot be read") as error:
        load_tiles(project, ids, TilingSpec(input_size=64), with_masks=True)
    assert all(slide_id in str(error.value) for slide_id in ids[1:3])


# -------------------------------------------------------------------------------- full and read-only disks
class ZeroSlide:
    """A 12000 x 12000 slide that is never read (allocation comes first)."""

    shape = (12000, 12000)

    def read_region(self, y, x, h, w):
        return np.zeros((h, w, 3), np.uint8)


def test_a_large_prediction_onto_a_full_disk_fails_at_once(trained, tmp_path, full_disk, capsys):
    _, run = trained
    images = tmp_path / "images"
    images.mkdir()
    big_tiff(images / "huge.tif")
    before = slide_folder_hash(images)
    started = time.monotonic()
    assert predict(run, images, full_disk / "pred", "--disagreement") == 2
    line = last_error(capsys)
    assert "12000×12000 slide needs about" in line and "free" in line and "pick another --out" in line
    assert time.monotonic() - started < 60
    assert slide_folder_hash(images) == before
    assert list((full_disk / "pred").iterdir()) == []  # no work folder, no sparse TIFF left behind


def test_disk_space_for_a_large_prediction_is_reserved_not_sparse(full_disk, monkeypatch):
    """With the free-space check out of the way, reserving the memory-mapped TIFFs fails with ENOSPC at once
    (a sparse file would have failed later, by SIGBUS) and the files are removed."""
    import napari_s4mi.core.inference as inference
    from napari_s4mi.core.preprocess import TilingSpec

    monkeypatch.setattr(inference, "ensure_free_space", lambda *args: None)
    calls = []
    with pytest.raises(OutputError, match="no space left on the device while reserving disk space"):
        inference.predict_slide(
            ZeroSlide(), calls.append, TilingSpec(), 2, out_dir=full_disk / "work", with_disagreement=True
        )
    assert calls == []  # nothing predicted
    assert list(full_disk.iterdir()) == []


def test_training_onto_a_full_disk_is_refused_before_it_starts(sample_project, full_disk, small_networks, capsys):
    sample_project.assign_splits(val_fraction=0.2, seed=0)  # what a first training does to a project, on purpose
    before = project_bytes(sample_project)
    code = main(["train", "seg", "--project", str(sample_project.root), "--out", str(full_disk / "run"), *TINY_ARGS])
    assert code == 2
    line = last_error(capsys)
    assert "training needs about" in line and "pick another --out" in line
    assert list(full_disk.iterdir()) == []  # the run folder it made is gone again
    assert project_bytes(sample_project) == before


def test_a_full_disk_during_a_checkpoint_keeps_the_previous_one(sample_project, tmp_path, monkeypatch):
    real_save = ckpt.save_file
    saves = []

    def save_file(tensors, filename, metadata=None):
        saves.append(filename)
        if len(saves) > 3:  # the first last/ (2 networks + optimizer) fits, the one of step 4 does not
            Path(filename).write_bytes(b"partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), filename)
        return real_save(tensors, filename, metadata)

    monkeypatch.setattr(ckpt, "save_file", save_file)
    run = tmp_path / "run"
    config = tiny_config(iterations=5, val_every=100, checkpoint_every=2, checkpoint_every_s=0)
    with pytest.raises(OutputError) as error:
        list(train(sample_project, config, run))
    line = str(error.value)
    assert "no space left on the device while writing a checkpoint" in line
    assert f"the previous checkpoint in {run / 'last'} is kept" in line and "\n" not in line
    assert sorted(p.name for p in run.iterdir()) == ["config.json", "last", "metrics.jsonl"]  # no .tmp, no lock
    assert ckpt.checkpoint_problem(run / "last") is None and ckpt.read_state(run / "last")["step"] == 2
    monkeypatch.setattr(ckpt, "save_file", real_save)
    events = list(train(sample_project, config, run, resume=True))
    assert any(isinstance(e, Message) and "resuming run at step 2 of 5" in e.text for e in events)
    assert [r["step"] for r in read_metrics(run)] == [1, 2, 3, 4, 5]


def test_an_unwritable_out_is_one_line(trained, sample_project, tmp_path, read_only_dir, small_networks, capsys):
    _, run = trained
    before = project_bytes(sample_project)
    code = main(
        ["train", "seg", "--project", str(sample_project.root), "--out", str(read_only_dir / "run"), *TINY_ARGS]
    )
    assert code == 2
    assert "read-only file system" in last_error(capsys)
    images = sample_slides(tmp_path / "images", 1)
    slides = slide_folder_hash(images)
    assert predict(run, images, read_only_dir / "pred") == 2
    assert "read-only file system" in last_error(capsys)
    assert project_bytes(sample_project) == before and slide_folder_hash(images) == slides


def test_permission_denied_is_one_line(trained, tmp_path, monkeypatch, capsys):
    _, run = trained
    images = sample_slides(tmp_path / "images", 1)
    import napari_s4mi.core.atomic as atomic

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(tmp_path / "out"))

    monkeypatch.setattr(atomic.tempfile, "mkstemp", refuse)
    assert predict(run, images, tmp_path / "out") == 2
    line = last_error(capsys)
    assert "permission denied while writing a prediction" in line and "fix its permissions" in line
    assert list((tmp_path / "out").iterdir()) == []


# --------------------------------------------------------------------------------------------------- runs
def test_sigterm_stops_like_ctrl_c_with_a_checkpoint(sample_project, tmp_path, small_networks, monkeypatch, capsys):
    import napari_s4mi.console as console

    real_drive = console.drive

    def drive(events):
        def terminated_at_step_1():
            for event in events:
                if isinstance(event, Progress) and event.step == 1:
                    os.kill(os.getpid(), signal.SIGTERM)
                yield event

        return real_drive(terminated_at_step_1())

    monkeypatch.setattr(console, "drive", drive)
    run = tmp_path / "run"
    args = ["train", "seg", "--project", str(sample_project.root), "--out", str(run), *TINY_ARGS]
    assert main(args) == 0
    assert "run stopped (resume with --resume) at step 1" in capsys.readouterr().out
    assert ckpt.checkpoint_problem(run / "last") is None and not (run / "run.lock").exists()
    monkeypatch.setattr(console, "drive", real_drive)
    assert main([*args, "--resume"]) == 0
    assert "finished at step 2" in capsys.readouterr().out
    assert [r["step"] for r in read_metrics(run)] == [1, 2]


def test_a_second_process_on_a_run_folder_is_refused(sample_project, tmp_path, small_networks, capsys):
    run = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom napari_s4mi.core.run_lock import RunLock\n"
         "RunLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(120)", str(run)],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = project_bytes(sample_project)
        args = ["train", "seg", "--project", str(sample_project.root), "--out", str(run), *TINY_ARGS]
        assert main(args) == 2
        line = last_error(capsys)
        assert f"in use by another s4mi process (pid {holder.pid})" in line
        assert sorted(p.name for p in run.iterdir()) == ["run.lock"]
        assert project_bytes(sample_project) == before
    finally:
        holder.kill()  # SIGKILL: the OS drops its lock, the stale run.lock file blocks nobody
        holder.wait()
    with RunLock(run):
        assert (run / "run.lock").read_text().strip() == str(os.getpid())
    assert not run.exists() or not (run / "run.lock").exists()


def test_a_checkpoint_is_also_written_after_a_time(sample_project, tmp_path):
    def saved(every_s: float, name: str) -> list[int]:
        config = tiny_config(iterations=3, val_every=100, checkpoint_every=1000, checkpoint_every_s=every_s)
        events = list(train(sample_project, config, tmp_path / name))
        return [e.step for e in events if isinstance(e, Checkpoint) and e.kind == "last"]

    assert saved(1e-6, "timed") == [1, 2, 3]
    assert saved(0, "untimed") == [3]


def _without_checkpoints(run: Path) -> Path:
    """What a kill -9 before the first checkpoint leaves: config.json, a log with a torn line, a stale lock."""
    for kind in ("last", "best"):
        shutil.rmtree(run / kind)
    (run / "last.tmp").mkdir()
    (run / "last.tmp" / "cnn.safetensors").write_bytes(b"\x10\x00")
    with open(run / "metrics.jsonl", "a") as fh:
        fh.write('{"step": 3, "lo')
    (run / "run.lock").write_text("99999\n")
    return run


def test_a_run_without_a_complete_checkpoint_restarts_or_resumes(trained, tmp_path, small_networks, capsys):
    project, run = trained
    before = project_bytes(project)
    first = _without_checkpoints(copy_run(run, tmp_path / "first"))
    args = ["train", "seg", "--project", str(project.root), *TINY_ARGS]
    assert main([*args, "--out", str(first)]) == 2
    line = last_error(capsys)
    assert "stopped before its first complete checkpoint" in line and "--restart" in line and "--resume" in line
    assert main([*args, "--out", str(first), "--resume"]) == 0
    out = capsys.readouterr()
    said = "holds no complete checkpoint (last/ is missing): restarting it from step 0 with its saved settings"
    assert said in out.out
    assert "finished at step 2" in out.out
    assert [r["step"] for r in read_metrics(first)] == [1, 2]
    second = _without_checkpoints(copy_run(run, tmp_path / "second"))
    assert main([*args, "--out", str(second), "--restart"]) == 0
    out = capsys.readouterr()
    assert "restarting second from step 0" in out.out and "finished at step 2" in out.out
    assert [r["step"] for r in read_metrics(second)] == [1, 2]
    assert not (second / "last.tmp").exists()
    # a run with a complete checkpoint is never thrown away by --restart
    assert main([*args, "--out", str(second), "--restart"]) == 2
    assert "complete checkpoint at step 2" in last_error(capsys)
    assert project_bytes(project) == before


def test_train_cls_takes_restart(tmp_path, monkeypatch):
    import napari_s4mi.core.cls_pipeline as cls_pipeline

    seen = {}

    def run_pipeline(project, pipeline, out, cancel, resume=False, restart=False):
        seen.update(resume=resume, restart=restart)
        return iter(())

    monkeypatch.setattr(cls_pipeline, "run_pipeline", run_pipeline)
    images = sample_slides(tmp_path / "images", 3)
    assert main(["train", "cls", "--images", str(images), "--out", str(tmp_path / "run"), "--restart"]) == 0
    assert seen == {"resume": False, "restart": True}
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "cls", "--out", "x", "--resume", "--restart"])


def _stopped_run(project, run: Path, at: int) -> Path:
    cancel = CancelToken()
    for event in train(project, tiny_config(iterations=4, val_every=2, checkpoint_every=2), run, cancel):
        if isinstance(event, Progress) and event.step == at:
            cancel.cancel()
    return run


def test_a_checkpoint_torn_by_a_crash_is_recovered(sample_project, tmp_path):
    # killed between the two renames of a save: last/ set aside as last.old, the new one not yet in place
    run = _stopped_run(sample_project, tmp_path / "aside", at=2)
    (run / "last").rename(run / "last.old")
    events = list(train(sample_project, tiny_config(iterations=4), run, resume=True))
    assert any(isinstance(e, Message) and "resuming aside at step 2 of 4 from its last checkpoint" in e.text
               for e in events)  # fmt: skip
    assert [r["step"] for r in read_metrics(run)] == [1, 2, 3, 4]
    # last/ truncated (a power cut before the data reached the disk): resume from best/, log cut back to its step
    run = _stopped_run(sample_project, tmp_path / "torn", at=3)
    weights = run / "last" / "cnn.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    events = list(train(sample_project, tiny_config(iterations=4), run, resume=True))
    text = [e.text for e in events if isinstance(e, Message)]
    assert any("resuming torn at step 2 of 4 from best/ (last/cnn.safetensors is truncated)" in t for t in text)
    assert [r["step"] for r in read_metrics(run)] == [1, 2, 3, 4]


def test_a_truncated_checkpoint_is_one_line(trained, tmp_path, capsys):
    _, run = trained
    broken = copy_run(run, tmp_path / "broken")
    weights = broken / "best" / "cnn.safetensors"
    weights.write_bytes(weights.read_bytes()[:5000])
    images = sample_slides(tmp_path / "images", 1)
    assert predict(broken, images, tmp_path / "out") == 2
    line = last_error(capsys)
    assert f"{weights}: truncated or damaged checkpoint file" in line and "--resume" in line
    optimizer = broken / "last" / "optimizer.safetensors"
    optimizer.write_bytes(optimizer.read_bytes()[:100])
    with pytest.raises(InputError, match="optimizer.safetensors: truncated or damaged checkpoint file"):
        ckpt.load_optimizers(broken / "last", {})
    (broken / "last" / "state.json").write_text('{"step": ')
    with pytest.raises(InputError, match="state.json: not a complete s4mi checkpoint"):
        ckpt.read_state(broken / "last")
