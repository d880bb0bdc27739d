"""Classification from few labels on real slides: the pipeline through the CLI, labels that never leak, nested
label fractions, multi-label training, per-slide scores from tiles, predictions.csv and saliency TIFFs."""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter

import numpy as np
import pytest
import tifffile
import torch
from conftest import REPO

from napari_s4mi.cli import main
from napari_s4mi.core.cls_pipeline import plan_pipeline, run_pipeline
from napari_s4mi.core.engine import prepare_data
from napari_s4mi.core.events import CancelToken, Done, Progress, Stage
from napari_s4mi.core.methods import build_method
from napari_s4mi.core.predictor import open_predictor
from napari_s4mi.core.sample import UNLABELED, create_cls_sample_project
from napari_s4mi.core.tasks.cls_plan import nested_subset, plan_classification

SAMPLE_CLS = REPO / "resources" / "sample-cls"
TINY = ["--input-size", "64", "--batch", "6", "--device", "cpu", "--precision", "fp32", "--weights", "none"]
FINETUNE = dict(batch=6, input_size=64, device="cpu", precision="fp32", val_every=2, checkpoint_every=2)


@pytest.fixture
def cls_project(tmp_path):
    return create_cls_sample_project(tmp_path / "project")


def tiny_pipeline(method: str, **finetune):
    pipeline = plan_pipeline(method, "cpu-small", FINETUNE | finetune, {"iterations": 2, "checkpoint_every": 1})
    for config in (pipeline.finetune, pipeline.pretraining):
        if config is not None:
            config.set_weights("none")
    return pipeline


def test_cli_cass_then_finetune_then_predict_with_saliency(tmp_path, capsys):
    images = tmp_path / "slides"
    shutil.copytree(SAMPLE_CLS / "images", images)
    run = tmp_path / "run"
    args = ["train", "cls", "--images", str(images), "--labels", str(SAMPLE_CLS / "labels.csv"), "--out", str(run)]
    assert main([*args, "--method", "cass", "--iterations", "3", "--pretrain-iterations", "2", *TINY]) == 0
    assert (run / "pretrain" / "last" / "cnn.safetensors").is_file() and (run / "last" / "vit.safetensors").is_file()
    assert "finished at step 3" in capsys.readouterr().out
    out = tmp_path / "pred"
    code = main(["predict", "--run", str(run), "--images", str(images), "--out", str(out), "--saliency", "melanoma"])
    assert code == 0
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert len(rows) == 12 and set(rows[0]) == {"image_id", "melanoma", "nevus", "seborrheic_keratosis", "pred"}
    for row in rows:
        probs = [float(row[c]) for c in ("melanoma", "nevus", "seborrheic_keratosis")]
        assert sum(probs) == pytest.approx(1.0, abs=1e-4) and row["pred"] in row
    saliency = tifffile.imread(out / f"{rows[0]['image_id']}_saliency.tif")
    assert saliency.shape == (256, 256) and saliency.dtype == np.float32
    assert 0.0 <= saliency.min() and saliency.max() == pytest.approx(1.0)

    # a second fine-tuning reuses the pretraining
    again = tmp_path / "again"
    reuse = ["--method", "cass", "--pretrain-from", str(run), "--iterations", "2", "--label-fraction", "0.5"]
    assert main(["train", "cls", "--project", str(images / ".s4mi"), "--out", str(again), *reuse, *TINY]) == 0
    assert not (again / "pretrain").exists() and (again / "last" / "cnn.safetensors").is_file()


def test_bad_label_csv_is_one_line_and_changes_nothing(tmp_path, capsys):
    images = tmp_path / "slides"
    shutil.copytree(SAMPLE_CLS / "images", images)
    bad = tmp_path / "bad.csv"
    bad.write_text("image_id,class_name\nISIC_0000227,nevus\nISIC_9999999,nevus\n")
    code = main(["train", "cls", "--images", str(images), "--labels", str(bad), "--out", str(tmp_path / "r"), *TINY])
    err = capsys.readouterr().err
    assert code == 2 and "row 3" in err and "ISIC_9999999" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_cancel_in_pretraining_then_resume_finishes_both_stages(cls_project, tmp_path):
    pipeline = tiny_pipeline("cass", iterations=2)
    cancel = CancelToken()
    first = []
    for event in run_pipeline(cls_project, pipeline, tmp_path / "run", cancel):
        first.append(event)
        if isinstance(event, Progress):
            cancel.cancel()
    assert isinstance(first[-1], Done) and first[-1].cancelled and first[-1].step == 1
    assert [e.name for e in first if isinstance(e, Stage)] == ["pretraining"]
    resumed = list(run_pipeline(cls_project, pipeline, tmp_path / "run", resume=True))
    assert [e.name for e in resumed if isinstance(e, Stage)] == ["pretraining", "fine-tuning"]
    done = [e for e in resumed if isinstance(e, Done)]
    assert [(d.step, d.cancelled) for d in done] == [(2, False), (2, False)]
    finished = list(run_pipeline(cls_project, pipeline, tmp_path / "run", resume=True))
    assert [e.name for e in finished if isinstance(e, Stage)] == ["fine-tuning"]  # pretraining is not repeated


def test_class_weights_see_training_labels_only(cls_project):
    # every melanoma slide but one goes to validation: the weights must count the one left in training
    melanoma = [i for i in cls_project.labeled_ids() if cls_project.labels_of(i) == ["melanoma"]]
    with cls_project._transaction():
        for slide_id in melanoma[1:]:
            cls_project.record(slide_id).split = "val"
    config = tiny_pipeline("supervised").finetune
    data = prepare_data(cls_project, config)
    assert set(melanoma[1:]) <= set(data.plan.val)
    counts = dict(zip(data.classes, data.class_counts(), strict=True))
    expected = Counter(cls_project.labels_of(i)[0] for i in data.plan.labeled)
    assert counts == {c: float(expected[c]) for c in data.classes} and counts["melanoma"] == 1
    method = build_method(config, data.run_info(), torch.device("cpu"), "fp32")
    weights = dict(zip(data.classes, method.loss_weights.tolist(), strict=True))
    assert weights["melanoma"] == max(weights.values())  # the rarest in training, not in the whole project


def test_label_fractions_are_stratified_and_nested(cls_project):
    labeled = cls_project.labeled_ids()
    small = nested_subset(cls_project, labeled, 0.3, seed=4)
    large = nested_subset(cls_project, labeled, 0.7, seed=4)
    assert set(small) < set(large) < set(labeled)
    assert {tuple(cls_project.labels_of(i)) for i in small} == {("melanoma",), ("nevus",), ("seborrheic_keratosis",)}
    plan = plan_classification(cls_project, 0.5, seed=4, val_fraction=0.3)
    assert not set(plan.val) & set(plan.labeled + plan.hidden)
    unlabeled = {f"{stem}.jpg" for stem in UNLABELED}
    assert unlabeled == set(plan.unlabeled) and unlabeled <= set(plan.pretraining_pool)
    assert not set(plan.val) & set(plan.pretraining_pool)


def test_multi_label_trains_on_the_two_isic_binary_columns(tmp_path):
    images = tmp_path / "slides"
    shutil.copytree(SAMPLE_CLS / "images", images)
    columns = {"nevus": "0,0", "melanoma": "1,0", "seborrheic_keratosis": "0,1"}  # the official Part 3 layout
    lines = (SAMPLE_CLS / "labels.csv").read_text().splitlines()[1:]
    table = tmp_path / "part3.csv"
    table.write_text(
        "image_id,melanoma,seborrheic_keratosis\n"
        + "".join(f"{i},{columns[c]}\n" for i, c in (line.split(",") for line in lines))
    )
    run = tmp_path / "run"
    args = ["train", "cls", "--images", str(images), "--labels", str(table), "--multi-label", "--out", str(run)]
    assert main([*args, "--method", "supervised", "--iterations", "4", "--val-every", "2", *TINY]) == 0
    predictor = open_predictor(run, device="cpu")
    assert predictor.multi_label and predictor.classes == ["melanoma", "seborrheic_keratosis"]
    metrics = [line for line in (run / "metrics.jsonl").read_text().splitlines() if "macro_f1" in line]
    assert metrics, "validation metrics must be written"
    out = tmp_path / "pred"
    assert main(["predict", "--run", str(run), "--images", str(images), "--out", str(out)]) == 0
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert all(0.0 <= float(r["melanoma"]) <= 1.0 for r in rows)  # independent sigmoids, not a softmax


class ArraySlide:
    def __init__(self, array: np.ndarray):
        self.array, self.shape = array, array.shape[:2]

    def read_region(self, y: int, x: int, h: int, w: int) -> np.ndarray:
        out = np.zeros((h, w, 3), np.uint8)
        part = self.array[y : y + h, x : x + w]
        out[: part.shape[0], : part.shape[1]] = part
        return out


def test_a_large_slide_scores_the_mean_of_its_tiles(cls_project, tmp_path):
    pipeline = tiny_pipeline("supervised", iterations=2)
    list(run_pipeline(cls_project, pipeline, tmp_path / "run"))
    predictor = open_predictor(tmp_path / "run", device="cpu")
    rng = np.random.default_rng(0)
    slide = ArraySlide(rng.integers(0, 255, (1000, 1200, 3), dtype=np.uint8))
    tiles = predictor.tile_probabilities(slide)
    scores = predictor.predict(slide)
    assert tiles.shape == (9, 3) and scores.n_tiles == 9  # 480 px tiles past 960 px: 3 x 3
    np.testing.assert_allclose(scores.probs, tiles.mean(axis=0), rtol=1e-6)
    assert scores.predicted == [predictor.classes[int(np.argmax(scores.probs))]]
    saliency = predictor.saliency(slide, 0, kind="gradcam")
    assert saliency.shape == (1000, 1200) and saliency.dtype == np.float32


def test_cli_cross_view_and_segmentation_options_are_refused_where_they_do_not_apply(tmp_path, capsys):
    images = tmp_path / "slides"
    shutil.copytree(SAMPLE_CLS / "images", images)
    labels = ["--labels", str(SAMPLE_CLS / "labels.csv")]
    run = tmp_path / "run"
    steps = ["--iterations", "1", "--pretrain-iterations", "1"]
    args = ["train", "cls", "--images", str(images), *labels, "--out", str(run), *steps, *TINY]
    assert main([*args, "--method", "cass", "--cross-view"]) == 0
    assert json.loads((run / "pretrain" / "config.json").read_text())["config"]["cross_view"] is True
    predict = ["predict", "--run", str(run), "--images", str(images), "--out", str(tmp_path / "p")]
    assert main([*predict, "--large-slides", "whole"]) == 2  # a segmentation option
    assert "--large-slides does not apply to a classification run" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()
    project = ["--project", str(images / ".s4mi")]
    dino = ["train", "cls", *project, "--out", str(tmp_path / "dino"), "--method", "dino", "--cross-view", *TINY]
    assert main(dino) == 2
    assert "unknown training setting 'cross_view'" in capsys.readouterr().err
    assert not (tmp_path / "dino" / "pretrain" / "config.json").exists()
    seg = ["train", "seg", "--images", str(images), "--out", str(tmp_path / "seg"), "--cross-view"]
    assert main(seg) == 2
    assert "give --init ssl RUN with it" in capsys.readouterr().err
