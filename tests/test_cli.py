"""The `s4mi` command line on real files: train, predict, resume, and one-line errors for bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import SAMPLE, TINY_CNN, TINY_SWIN, slide_folder_hash
from PIL import Image

from napari_s4mi.cli import main

TINY = [
    "--iterations",
    "2",
    "--input-size",
    "64",
    "--labeled-batch",
    "2",
    "--unlabeled-batch",
    "2",
    "--precision",
    "fp32",
    "--device",
    "cpu",
    "--weights",
    "none",
]


@pytest.fixture
def slides(tmp_path):
    """A writable copy of the sample slides and masks."""
    shutil.copytree(SAMPLE / "images", tmp_path / "images")
    shutil.copytree(SAMPLE / "masks", tmp_path / "masks")
    return tmp_path


def small_networks(monkeypatch):
    """Make the cpu-small preset use the tiny test networks (the CLI flags cover everything else)."""
    import napari_s4mi.core.seg_config as seg_config

    monkeypatch.setattr(seg_config, "unet_spec", lambda encoder: dict(TINY_CNN))
    monkeypatch.setattr(seg_config, "swin_spec", lambda embed_dim, heads: dict(TINY_SWIN))


def test_train_predict_resume(slides, monkeypatch, capsys):
    small_networks(monkeypatch)
    before = slide_folder_hash(slides / "images")
    run = slides / "run"
    code = main(
        [
            "train",
            "seg",
            "--images",
            str(slides / "images"),
            "--masks",
            str(slides / "masks"),
            "--out",
            str(run),
            "--label-fraction",
            "0.5",
            "--seed",
            "3",
            "--no-cuda-graphs",
            *TINY,
        ]
    )
    assert code == 0
    assert "finished at step 2" in capsys.readouterr().out
    record = json.loads((run / "config.json").read_text())
    assert record["seed"] == 3 and record["config"]["label_fraction"] == 0.5
    assert record["config"]["cuda_graphs"] is False
    assert (slides / "images" / ".s4mi" / "s4mi-project.json").exists()
    out = slides / "pred"
    assert (
        main(
            [
                "predict",
                "--run",
                str(run),
                "--images",
                str(slides / "images"),
                "--out",
                str(out),
                "--disagreement",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    for path in (slides / "images").glob("*.jpg"):
        mask = np.asarray(Image.open(out / f"{path.stem}.png"))
        assert mask.shape == (256, 256) and set(np.unique(mask)) <= {0, 255}
        assert (out / f"{path.stem}_disagreement.tif").exists()
    assert not list(out.glob(".*work"))
    before.pop(".s4mi", None)
    after = slide_folder_hash(slides / "images")
    assert after == before, "slides must stay untouched"

    # a slide over the tile threshold (the same scene at 768 x 1024): tiled as in training, or resized whole
    from napari_s4mi.core.io import open_slide
    from napari_s4mi.core.predictor import open_predictor
    from napari_s4mi.core.stress import stress_pair

    first = sorted((slides / "images").glob("*.jpg"))[0]
    with open_slide(first) as slide:
        large, _ = stress_pair(slide.read(), np.zeros(slide.shape, np.uint8), "large")
    (slides / "large").mkdir()
    Image.fromarray(large).save(slides / "large" / "big.png")
    predictor = open_predictor(run, device="cpu")
    with open_slide(slides / "large" / "big.png") as slide:
        assert predictor.predict(slide).n_tiles == 6  # 2 x 3 tiles of 480 px
        assert predictor.predict(slide, large_slides="whole").n_tiles == 1
    args = ["predict", "--run", str(run), "--images", str(slides / "large"), "--device", "cpu"]
    assert main([*args, "--out", str(slides / "whole"), "--large-slides", "whole"]) == 0
    assert np.asarray(Image.open(slides / "whole" / "big.png")).shape == (768, 1024)
    assert "note" not in capsys.readouterr().err
    assert main([*args, "--out", str(slides / "tiled")]) == 0
    assert "big.png: a 768×1024 slide is over the 960-px tile threshold" in capsys.readouterr().err
    assert json.loads((run / "config.json").read_text())["largest_training_side"] == 256


def test_resume_a_stopped_run(slides, monkeypatch, capsys):
    small_networks(monkeypatch)
    args = ["train", "seg", "--images", str(slides / "images"), "--masks", str(slides / "masks"), *TINY]
    assert main([*args, "--out", str(slides / "run")]) == 0
    config = json.loads((slides / "run" / "config.json").read_text())
    config["config"]["iterations"] = 4
    (slides / "run" / "config.json").write_text(json.dumps(config))
    assert (
        main(
            [
                "train",
                "seg",
                "--project",
                str(slides / "images" / ".s4mi"),
                "--out",
                str(slides / "run"),
                "--resume",
            ]
        )
        == 0
    )
    assert "finished at step 4" in capsys.readouterr().out


def test_read_only_slides_put_the_project_beside_the_run(slides, monkeypatch, capsys):
    small_networks(monkeypatch)
    import napari_s4mi.core.project.base as project_module

    real_access = project_module.os.access
    monkeypatch.setattr(
        project_module.os,
        "access",
        lambda p, mode, **kw: (
            False if str(p).startswith(str(slides / "images")) and mode & 2 else real_access(p, mode, **kw)
        ),
    )
    code = main(
        [
            "train",
            "seg",
            "--images",
            str(slides / "images"),
            "--masks",
            str(slides / "masks"),
            "--out",
            str(slides / "run"),
            *TINY,
        ]
    )
    assert code == 0
    assert (slides / "run-project" / "s4mi-project.json").exists()
    assert not (slides / "images" / ".s4mi").exists()


@pytest.mark.parametrize(
    "setup, expected",
    [
        ("empty", "no PNG/JPEG/BMP/TIFF"),
        ("no-masks", "no annotated slides"),
        ("bad-image", "broken.png"),
        ("mismatched-mask", "ISIC_0000112"),
    ],
)
def test_bad_input_gives_one_line_error(slides, monkeypatch, capsys, setup, expected):
    small_networks(monkeypatch)
    images, masks = slides / "images", slides / "masks"
    if setup == "empty":
        shutil.rmtree(images)
        images.mkdir()
    elif setup == "no-masks":
        shutil.rmtree(masks)
        masks.mkdir()
    elif setup == "bad-image":  # its header reads, its pixels do not (a text file is left out of the project)
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)).save(images / "broken.png")
        (images / "broken.png").write_bytes((images / "broken.png").read_bytes()[:200])
        Image.fromarray(np.zeros((64, 64), np.uint8)).save(masks / "broken.png")
    elif setup == "mismatched-mask":
        Image.fromarray(np.zeros((100, 80), np.uint8)).save(masks / "ISIC_0000112_segmentation.png")
    code = main(["train", "seg", "--images", str(images), "--masks", str(masks), "--out", str(slides / "run"), *TINY])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("s4mi: error: ") and expected in err[-1]
    if setup == "mismatched-mask":
        assert not (images / ".s4mi" / "masks" / "ISIC_0000112.tif").exists()


def test_predict_errors(slides, capsys):
    assert (
        main(
            [
                "predict",
                "--run",
                str(slides / "nothing"),
                "--images",
                str(slides / "images"),
                "--out",
                str(slides / "o"),
            ]
        )
        == 2
    )
    assert "not an s4mi run folder" in capsys.readouterr().err
    (slides / "empty").mkdir()
    assert (
        main(
            [
                "predict",
                "--run",
                str(slides / "nothing"),
                "--images",
                str(slides / "empty"),
                "--out",
                str(slides / "o"),
            ]
        )
        == 2
    )
    assert "no PNG/JPEG/BMP/TIFF slides" in capsys.readouterr().err
