"""A k-nearest-neighbour probe on frozen CASS features beats the same probe on randomly initialised features, on
real ISIC-2017 images (../shared/data/isic2017; skipped when absent). Heavy: marked slow."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA

from napari_s4mi.core.cls_metrics import classification_report
from napari_s4mi.core.engine import train
from napari_s4mi.core.inputs import normalise_batch
from napari_s4mi.core.methods import build_method
from napari_s4mi.core.predictor import read_trained_run
from napari_s4mi.core.preprocess import network_tile
from napari_s4mi.core.project import Project
from napari_s4mi.core.registry import make_config

ISIC = SHARED_DATA / "isic2017"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (ISIC / "labels" / "labels.csv").is_file(), reason="needs ../shared/data/isic2017"),
]
SIZE, N_TRAIN, N_TEST, K = 64, 600, 300, 10


def knn_macro_recall(train_x, train_y, test_x, test_y, k: int = K) -> float:
    """Cosine k-NN with majority vote, scored by macro recall (balanced accuracy)."""
    a = torch.nn.functional.normalize(train_x, dim=1)
    b = torch.nn.functional.normalize(test_x, dim=1)
    nearest = (b @ a.T).topk(k, dim=1).indices
    votes = np.stack([np.bincount(train_y[row], minlength=3) for row in nearest.numpy()])
    probs = votes / votes.sum(axis=1, keepdims=True)
    return classification_report(test_y, probs, False, ["0", "1", "2"]).macro_recall


def features(method, images: np.ndarray) -> torch.Tensor:
    x = normalise_batch(images, red_norm=True)
    return torch.cat([torch.cat(list(method.predict(x[i : i + 64]).values()), dim=1) for i in range(0, len(x), 64)])


def test_knn_on_cass_features_beats_random_features(tmp_path):
    rows = list(csv.DictReader((ISIC / "labels" / "labels.csv").open()))
    rng = np.random.default_rng(0)
    chosen = [rows[i] for i in rng.permutation(len(rows))[: N_TRAIN + N_TEST]]
    from napari_s4mi.core.io import open_slide

    images, labels = [], []
    for row in chosen:
        with open_slide(ISIC / "images" / f"{row['image_id']}.jpg") as slide:
            images.append(network_tile(slide.read(), SIZE))
        labels.append(int(row["label"]))
    images, labels = np.stack(images), np.array(labels)
    # pretrain on the probe's training images only (their labels unused), in a project of their own
    folder = tmp_path / "slides"
    folder.mkdir()
    for row in chosen[:N_TRAIN]:
        (folder / f"{row['image_id']}.jpg").symlink_to(ISIC / "images" / f"{row['image_id']}.jpg")
    project = Project.create(folder, project_dir=tmp_path / "project")
    config = make_config(
        "pretraining", "cass", iterations=400, batch=32, input_size=SIZE, device="cpu", checkpoint_every=400, seed=0
    )
    config.set_weights("none")
    list(train(project, config, tmp_path / "cass"))
    torch.manual_seed(config.seed)  # the same random initialisation the pretraining started from
    random_init = build_method(config, {}, torch.device("cpu"), "fp32")
    trained = read_trained_run(tmp_path / "cass", device="cpu", precision="fp32").build_method()
    split = slice(0, N_TRAIN), slice(N_TRAIN, None)
    scores = {}
    for name, method in (("random", random_init), ("cass", trained)):
        f = features(method, images)
        scores[name] = knn_macro_recall(f[split[0]], labels[split[0]], f[split[1]], labels[split[1]])
    print(f"k-NN macro recall: random init {scores['random']:.3f}, CASS {scores['cass']:.3f}")
    assert scores["cass"] > scores["random"]
