"""PiCIE, the 0%-label segmentation method: trains through the engine on the real sample slides with masks only on
validation slides, fits its cluster -> class map once on the pooled validation confusion (never per image, never on
test masks), resumes exactly with its centroids, and predicts classes through the map or the user's pick."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA

from napari_s4mi.cli import main
from napari_s4mi.core.cluster_map import foreground_iou, hungarian_map, read_cluster_choice
from napari_s4mi.core.engine import train
from napari_s4mi.core.errors import TrainingError
from napari_s4mi.core.events import CancelToken, Done, Progress, Validation
from napari_s4mi.core.methods import build_method
from napari_s4mi.core.methods.kmeans import spherical_kmeans
from napari_s4mi.core.methods.picie import Picie, crop_features
from napari_s4mi.core.picie_views import geometric
from napari_s4mi.core.predictor import open_predictor, read_trained_run
from napari_s4mi.core.registry import make_config, method_names
from napari_s4mi.core.runs import read_metrics
from napari_s4mi.core.sample import create_sample_project, sample_dir

VAL = ("ISIC_0000112.jpg", "ISIC_0000113.jpg", "ISIC_0000116.jpg")
TEST = ("ISIC_0000119.jpg", "ISIC_0000120.jpg")
TINY_FPN = {"arch": "fpn", "encoder": "resnet18", "weights": "none"}


def picie_config(**overrides):
    """4 steps at 64 px, 2 images a step, a clustering every 2 steps on 4 images, random init, fp32 CPU."""
    settings = dict(
        iterations=4,
        input_size=64,
        labeled_batch=2,
        device="cpu",
        precision="fp32",
        val_every=2,
        checkpoint_every=2,
        cluster_every=2,
        cluster_images=4,
        cluster_pixels=2000,
        kmeans_iterations=5,
        cnn=dict(TINY_FPN),
    )
    return make_config("segmentation", "picie", "cpu-small", **(settings | overrides))


def val_only_project(folder, invert_test: bool = False):
    """The sample slides with masks on 3 validation and 2 test slides only; every other slide unannotated."""
    slides = sorted(p.name for p in (sample_dir() / "images").iterdir())
    project = create_sample_project(folder, hold_back=tuple(s for s in slides if s not in VAL + TEST))
    for slide_id in VAL + TEST:
        project.record(slide_id).split = "val" if slide_id in VAL else "test"
        if invert_test and slide_id in TEST:
            project.save_mask(slide_id, 1 - project.read_mask(slide_id))
    project.save()
    return project


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(project, run folder, events, slides whose masks training read) of one 4-step PiCIE run."""
    root = tmp_path_factory.mktemp("picie")
    project = val_only_project(root / "project")
    read: list[str] = []
    original = project.read_mask
    project.read_mask = lambda slide_id: read.append(slide_id) or original(slide_id)
    events = list(train(project, picie_config(), root / "run"))
    project.read_mask = original
    return project, root / "run", events, read


def test_picie_is_the_registered_zero_label_method():
    assert "picie" in method_names("segmentation")
    config = make_config("segmentation", "picie")
    assert config.label_fraction == 0.0 and not config.uses_labels and config.clusters == 2
    assert make_config("segmentation", "picie", "paper").input_size == 224
    with pytest.raises(TrainingError, match="uses no labels"):
        make_config("segmentation", "picie", label_fraction=0.5)
    with pytest.raises(TrainingError, match="foreground clusters"):
        make_config("segmentation", "picie", foreground_clusters=[0, 1])


def test_picie_trains_without_training_masks_and_validates(trained):
    project, run, events, read = trained
    done = events[-1]
    assert isinstance(done, Done) and done.step == 4 and not done.cancelled
    validations = [e for e in events if isinstance(e, Validation)]
    assert [v.step for v in validations] == [2, 4] and all(0 <= v.score <= 1 for v in validations)
    assert set(read) == set(VAL), "training read masks beyond the validation slides'"
    losses = [e.parts for e in events if isinstance(e, Progress)]
    assert all(np.isfinite(p["within"]) and np.isfinite(p["cross"]) for p in losses)
    record = json.loads((run / "config.json").read_text())
    assert sorted(record["data"]["val"]) == sorted(VAL) and not set(TEST) & set(record["data"]["unlabeled"])
    assert len(record["data"]["unlabeled"]) == 5 and record["data"]["labeled"] == []
    logged = [r for r in read_metrics(run) if "cluster_map" in r]
    assert len(logged) == 2 and len(logged[0]["cluster_confusion"]) == 2
    state = read_trained_run(run, device="cpu").state
    assert state["networks"] == ["cnn"] and list(state["optimizers"]) == ["cnn"]


def test_prediction_gives_classes_through_the_validation_map_or_the_users_pick(trained, capsys):
    project, run, _, _ = trained
    slide_id = TEST[0]
    predictor = open_predictor(run, device="cpu")
    method = predictor.method
    fitted = method.net.cluster_map.tolist()
    assert read_cluster_choice(run).fitted == fitted and read_cluster_choice(run).foreground == []
    with project.open_slide(slide_id) as slide:
        labels = predictor.predict(slide).labels
        assert labels.shape == slide.shape[:2] and set(np.unique(labels)) <= {0, 1}
        picked = {}
        for k in (0, 1):
            assert main(["clusters", str(run), "--foreground", str(k)]) == 0
            picked[k] = open_predictor(run, device="cpu").predict(slide).labels
    assert "foreground chosen by hand: 1" in capsys.readouterr().out
    assert np.array_equal(picked[0], 1 - picked[1]), "the two picks of 2 clusters must be complements"
    assert np.array_equal(labels, picked[fitted.index(1)]) if sorted(fitted) == [0, 1] else True
    assert main(["clusters", str(run), "--auto"]) == 0 and read_cluster_choice(run).foreground == []
    assert main(["clusters", str(run), "--foreground", "2"]) == 2  # one line, no traceback


def test_the_map_ignores_test_masks(trained, tmp_path):
    """A project whose test masks are inverted trains the very same network, map and clustering (so the same test
    predictions): test masks play no part."""
    _, run, _, _ = trained
    other = val_only_project(tmp_path / "project", invert_test=True)
    list(train(other, picie_config(), tmp_path / "run"))
    first, second = (read_trained_run(r, device="cpu").build_method() for r in (run, tmp_path / "run"))
    assert first.net.cluster_map.tolist() == second.net.cluster_map.tolist()
    pairs = zip(first.net.state_dict().items(), second.net.state_dict().items(), strict=True)
    assert all(a == b and torch.equal(x, y) for (a, x), (b, y) in pairs)


class ColourClusters(Picie):
    """Clusters by a pixel's first channel (> 0: cluster 1), so a test controls what each image's clusters are."""

    def cluster_probabilities(self, x: torch.Tensor) -> torch.Tensor:
        one = (x[:, 0] > 0).float()
        return torch.stack([1 - one, one], dim=1)


def test_the_map_is_fitted_on_the_pooled_confusion_not_per_image():
    method = ColourClusters(picie_config(), {"classes": ["bg", "fg"]}, torch.device("cpu"), "fp32")
    image = torch.zeros(4, 3, 8, 8)
    image[:, 0, :, :3] = 1.0  # cluster 1 on the left three columns of every image
    mask = (image[:, 0] > 0).long()
    mask[3] = 1 - mask[3]  # the last image's classes are the other way round
    result = method.evaluate([{"image": image, "mask": mask}])
    assert result.details["cluster_map"] == [0, 1], "three images agree: the pooled map must follow them"
    assert result.score == pytest.approx(9 / (9 + 5 + 3)), "the inverted image is scored as wrong, not remapped"


def test_predicted_class_is_the_class_of_the_most_likely_cluster():
    """With more clusters than classes the class scores still argmax to the mapped most likely cluster."""
    method = build_method(picie_config(clusters=4), {"classes": ["bg", "fg"]}, torch.device("cpu"), "fp32")
    method.net.centroids[0].copy_(torch.nn.functional.normalize(torch.randn(4, 128), dim=1))
    method.net.cluster_map.copy_(torch.tensor([0, 0, 1, 0]))
    x = torch.randn(2, 3, 64, 64)
    clusters = method.cluster_probabilities(x).argmax(dim=1)
    scores = method.predict(x)["cnn"]
    assert torch.equal(scores.argmax(dim=1), method.net.cluster_map[clusters])
    assert torch.allclose(scores.sum(dim=1), torch.ones(1), atol=1e-5)


def test_hungarian_matching_on_crafted_confusions():
    # greedy majority would send both clusters to class 0; the one-to-one assignment covers more pixels
    assert hungarian_map(np.array([[60, 40], [55, 5]])).tolist() == [1, 0]
    assert hungarian_map(np.array([[10, 90], [80, 20]])).tolist() == [1, 0]
    # more clusters than classes: the leftover cluster takes its majority class
    assert hungarian_map(np.array([[50, 0], [0, 40], [30, 5]])).tolist() == [0, 1, 0]
    confusion = np.array([[70, 10], [5, 15]])
    assert foreground_iou(confusion, np.array([0, 1])) == pytest.approx(15 / (15 + 5 + 10))


def test_resume_keeps_the_clustering_and_the_losses(tmp_path):
    project = val_only_project(tmp_path / "project")
    config = dict(iterations=3, val_every=100)  # clusterings before steps 0 and 2
    straight = list(train(project, picie_config(**config), tmp_path / "straight"))
    cancel = CancelToken()
    first = []
    for event in train(project, picie_config(**config), tmp_path / "stopped", cancel):
        first.append(event)
        if isinstance(event, Progress) and event.step == 1:
            cancel.cancel()
    stopped = read_trained_run(tmp_path / "stopped", device="cpu", checkpoint="last").build_method()
    assert stopped.net.clustered.item() == 1 and stopped.net.centroids.abs().sum() > 0
    resumed = list(train(project, picie_config(**config), tmp_path / "stopped", resume=True))
    losses = [e.loss for e in straight if isinstance(e, Progress)]
    runs = ("straight", "stopped")
    assert [e.loss for e in first + resumed if isinstance(e, Progress)] == pytest.approx(losses, rel=1e-5)
    a, b = (read_trained_run(tmp_path / r, device="cpu", checkpoint="last").build_method() for r in runs)
    assert torch.allclose(a.net.centroids, b.net.centroids, atol=1e-6)


def test_no_validation_masks_names_the_default_map_in_one_line(tmp_path, capsys):
    """A project without any mask trains from the command line, says in one line which cluster will be foreground
    and how to choose, and keeps the foreground picked with --foreground-cluster."""
    slides = sorted(p.name for p in (sample_dir() / "images").iterdir())
    project = create_sample_project(tmp_path / "project", hold_back=tuple(slides))
    project.classes = ["background", "foreground"]
    project.save()
    args = ["train", "seg", "--project", str(project.root), "--out", str(tmp_path / "run"), "--method", "picie"]
    args += ["--iterations", "1", "--input-size", "64", "--labeled-batch", "2", "--device", "cpu"]
    assert main(args + ["--precision", "fp32", "--weights", "none", "--foreground-cluster", "1"]) == 0
    captured = capsys.readouterr()
    lines = [line for line in (captured.out + captured.err).splitlines() if "no validation masks" in line]
    assert len(lines) == 1 and "cluster 0" in lines[0] and "--foreground" in lines[0]
    choice = read_cluster_choice(tmp_path / "run")
    assert choice.fitted is None and choice.foreground == [1] and choice.in_use == [0, 1]


def test_feature_crop_follows_the_image_crop():
    """G on a feature map (grid sampling) matches G on the image (crop, resize, flip) pixel for pixel."""
    yy, xx = np.mgrid[0:64, 0:64].astype(np.float32)
    image = np.stack([np.sin(xx / 9) * 100 + 120, np.cos(yy / 7) * 100 + 120, (xx + yy)], axis=-1)
    box, size = (8, 20, 32, 32), 64
    for flip in (False, True):
        expected = geometric(image.astype(np.uint8), box, flip).astype(np.float32)
        z = torch.from_numpy(image.round().astype(np.uint8).astype(np.float32)).permute(2, 0, 1)[None]
        got = crop_features(z, torch.tensor([box], dtype=torch.float32) / size, torch.tensor([flip]))
        got = got[0].permute(1, 2, 0).numpy()
        assert np.abs(got - expected)[2:-2, 2:-2].mean() < 1.5


def test_spherical_kmeans_finds_two_groups_and_keeps_their_order():
    generator = torch.Generator().manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(300, 8) * 0.1 + torch.eye(8)[0], dim=1)
    b = torch.nn.functional.normalize(torch.randn(100, 8) * 0.1 + torch.eye(8)[1], dim=1)
    centroids, counts = spherical_kmeans(torch.cat([a, b]), 2, 10, generator)
    assert sorted(counts.tolist()) == [100, 300]
    again, counts_again = spherical_kmeans(torch.cat([a, b]), 2, 10, generator, init=centroids)
    assert torch.allclose(again, centroids, atol=1e-5) and counts_again.tolist() == counts.tolist()


def test_build_method_uses_the_networks_buffers_not_new_parameters():
    method = build_method(picie_config(), {"classes": ["bg", "fg"]}, torch.device("cpu"), "fp32")
    net = method.net
    assert all(not name.startswith("labeler") for name, _ in net.named_parameters())
    assert any(name.startswith("labeler") for name in net.state_dict())


# ----------------------------------------------------------------------------------------------- real ISIC images

ISIC = SHARED_DATA / "isic2017"
N_TRAIN, N_VAL, N_TEST, SIZE, STEPS = 400, 100, 200, 64, 300


def isic_mask(image_id: str) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(ISIC / "masks" / f"{image_id}_segmentation.png")) > 0


def pooled_iou(predict, ids) -> float:
    """Pooled foreground IoU over the ``ids``' ISIC images at their own 256 px, ``predict(slide)`` -> labels."""
    from napari_s4mi.core.io import open_slide
    from napari_s4mi.core.metrics import ConfusionCounts

    counts = ConfusionCounts()
    for image_id in ids:
        with open_slide(ISIC / "images" / f"{image_id}.jpg") as slide:
            counts.add(predict(slide), isic_mask(image_id))
    return counts.iou()


def otsu_iou(ids, dark: bool) -> float:
    """Pooled IoU of a per-image Otsu threshold of the grayscale image (``dark``: below it is foreground)."""
    from PIL import Image
    from skimage.filters import threshold_otsu

    from napari_s4mi.core.metrics import ConfusionCounts

    counts = ConfusionCounts()
    for image_id in ids:
        gray = np.asarray(Image.open(ISIC / "images" / f"{image_id}.jpg").convert("L"), dtype=np.float32)
        level = threshold_otsu(gray)
        counts.add(gray < level if dark else gray > level, isic_mask(image_id))
    return counts.iou()


@pytest.mark.slow
@pytest.mark.skipif(not (ISIC / "masks").is_dir(), reason="needs ../shared/data/isic2017")
@pytest.mark.parametrize("clusters", [2, 4])
def test_picie_beats_all_foreground_and_untrained_kmeans_on_isic(tmp_path, clusters):
    """PiCIE trained briefly at 64 px (random init, no training masks; k = 2, the default, and k = 4) against: all
    foreground, and k-means (k = 2, and k as PiCIE's) on the features of the same network untrained, each with its
    map fitted on the same validation masks; printed beside them, a per-image Otsu threshold whose polarity is fitted
    on validation."""
    from napari_s4mi.core.engine import prepare_data
    from napari_s4mi.core.inference import predict_slide
    from napari_s4mi.core.project import Project
    from napari_s4mi.core.tasks.segmentation import tiling_spec

    ids = sorted(p.stem for p in (ISIC / "images").glob("*.jpg"))
    order = np.random.default_rng(0).permutation(len(ids))
    train_ids, val_ids, test_ids = (
        [ids[i] for i in order[a:b]] for a, b in ((0, N_TRAIN), (N_TRAIN, N_TRAIN + N_VAL), (N_TRAIN + N_VAL, -1))
    )
    test_ids = test_ids[:N_TEST]
    slides, masks = tmp_path / "slides", tmp_path / "masks"
    slides.mkdir(), masks.mkdir()
    for image_id in train_ids + val_ids:
        (slides / f"{image_id}.jpg").symlink_to(ISIC / "images" / f"{image_id}.jpg")
    for image_id in val_ids:  # the only masks the project has
        name = f"{image_id}_segmentation.png"
        (masks / name).symlink_to(ISIC / "masks" / name)
    project = Project.create(slides, project_dir=tmp_path / "project")
    project.import_masks(masks)
    for slide_id in project.annotated_ids():
        project.record(slide_id).split = "val"
    project.save()
    settings = dict(iterations=STEPS, input_size=SIZE, device="cpu", precision="fp32", cnn=dict(TINY_FPN))
    config = make_config("segmentation", "picie", clusters=clusters, val_every=50, checkpoint_every=STEPS, **settings)
    data = prepare_data(project, config)
    cpu = torch.device("cpu")

    def untrained_kmeans(k: int):
        """k-means of the untrained network's features (the initialisation training starts from), mapped on val."""
        baseline = make_config("segmentation", "picie", clusters=k, **settings)
        torch.manual_seed(baseline.seed)
        method = build_method(baseline, data.run_info(), cpu, "fp32")
        method.refresh(0, data.sample_batches(0, cpu))
        method.evaluate(data.validation_batches(cpu))
        tiles = lambda x: method.predict(x)["cnn"]  # noqa: E731
        return lambda slide: predict_slide(slide, tiles, tiling_spec(baseline), 2, data.red_norm, batch_size=32).labels

    untrained = {k: untrained_kmeans(k) for k in sorted({2, clusters})}
    list(train(project, config, tmp_path / "run"))
    predictor = open_predictor(tmp_path / "run", device="cpu")
    scores = {f"picie k={clusters}": pooled_iou(lambda slide: predictor.predict(slide, batch_size=32).labels, test_ids)}
    scores |= {f"untrained k-means k={k}": pooled_iou(labels, test_ids) for k, labels in untrained.items()}
    scores["all foreground"] = pooled_iou(lambda slide: np.ones(slide.shape[:2], np.uint8), test_ids)
    scores["otsu"] = otsu_iou(test_ids, dark=otsu_iou(val_ids, True) >= otsu_iou(val_ids, False))
    print(f"ISIC-2017 test IoU ({SIZE} px, {STEPS} steps): " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()))
    picie = scores[f"picie k={clusters}"]
    assert picie > scores["all foreground"]
    assert all(picie > scores[f"untrained k-means k={k}"] for k in untrained)
