"""Self-supervised pretraining on real slides: the CASS step is the textbook computation from zeroed gradients,
CASS and DINO keep their embeddings spread (no collapse), and a run trains, stops and resumes in the engine."""

from __future__ import annotations

import copy

import pytest
import torch

from napari_s4mi.core.engine import prepare_data, train
from napari_s4mi.core.events import Done, Progress
from napari_s4mi.core.inputs import normalise_batch
from napari_s4mi.core.methods import build_method
from napari_s4mi.core.methods.cass import cass_loss
from napari_s4mi.core.predictor import read_trained_run
from napari_s4mi.core.registry import make_config


def tiny(method: str, **overrides):
    settings = dict(iterations=4, batch=8, input_size=64, device="cpu", precision="fp32", checkpoint_every=2)
    settings.update(overrides)
    config = make_config("pretraining", method, **settings)
    config.set_weights("none")
    return config


def test_cass_step_is_the_hand_computation_from_zeroed_gradients(sample_project):
    config = tiny("cass", cosine=False)
    data = prepare_data(sample_project, config)
    torch.manual_seed(0)
    method = build_method(config, data.run_info(), torch.device("cpu"), "fp32")
    first, second = (data.to_device(data.batch(step), torch.device("cpu")) for step in (0, 1))
    method.train_step(0, first)
    before = copy.deepcopy(method.networks)  # the networks as the second step finds them
    parts = method.train_step(1, second)

    cnn, vit = before.values()
    loss = cass_loss(cnn(second["view"]), vit(second["view"]))
    loss.backward()  # from zero: a fresh copy has no gradients
    assert parts["loss"] == pytest.approx(loss.item(), rel=1e-5)
    for name, reference in before.items():
        for p, q in zip(method.networks[name].parameters(), reference.parameters(), strict=True):
            if q.grad is not None:
                # gradients accumulated over steps (the reference code's bug) would differ by the first step's
                torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6)


def test_cross_view_cass_gives_each_network_its_own_view(sample_project):
    config = tiny("cass", cross_view=True)
    data = prepare_data(sample_project, config)
    batch = data.to_device(data.batch(0), torch.device("cpu"))
    assert batch["view"].shape[0] == 2 * config.batch
    first, second = batch["view"].chunk(2)
    assert not torch.equal(first, second)  # two different augmentations of the same images
    torch.manual_seed(0)
    method = build_method(config, data.run_info(), torch.device("cpu"), "fp32")
    cnn, vit = copy.deepcopy(method.networks).values()
    expected = cass_loss(cnn(first), vit(second)).item()
    assert method.train_step(0, batch)["loss"] == pytest.approx(expected, rel=1e-5)
    assert cass_loss(cnn(first), vit(first)).item() != pytest.approx(expected, rel=1e-3)


def spread_after_training(sample_project, tmp_path, method: str, **overrides) -> tuple[float, float, list[Progress]]:
    config = tiny(method, **overrides)
    events = list(train(sample_project, config, tmp_path / method))
    assert isinstance(events[-1], Done) and events[-1].step == config.iterations
    run = read_trained_run(tmp_path / method, device="cpu")
    trained = run.build_method()
    data = prepare_data(sample_project, config)
    x = normalise_batch(data.tiles.images, data.red_norm)
    return trained.embedding_spread(x), trained.embedding_width, [e for e in events if isinstance(e, Progress)]


def test_cass_does_not_collapse_on_real_slides(sample_project, tmp_path):
    spread, width, steps = spread_after_training(sample_project, tmp_path, "cass", iterations=12)
    assert steps[-1].loss < steps[0].loss, "the two networks should come to agree"
    assert spread > 0.5 / width**0.5, f"CASS embeddings collapsed: spread {spread:.4f}"


def test_dino_does_not_collapse_on_real_slides(sample_project, tmp_path):
    spread, width, _ = spread_after_training(
        sample_project, tmp_path, "dino", iterations=12, local_crops=2, out_dim=256
    )
    assert spread > 0.5 / width**0.5, f"DINO teacher outputs collapsed: spread {spread:.4f}"


def test_dino_teacher_has_no_optimiser_and_follows_the_student(sample_project):
    config = tiny("dino", local_crops=2, out_dim=64)
    data = prepare_data(sample_project, config)
    method = build_method(config, data.run_info(), torch.device("cpu"), "fp32")
    assert list(method.optimizers) == ["vit_student"]
    teacher = method.networks["vit"]
    before = [p.clone() for p in teacher.parameters()]
    center = teacher.head.center.clone()
    method.train_step(0, data.to_device(data.batch(0), torch.device("cpu")))
    assert all(p.grad is None for p in teacher.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, teacher.parameters(), strict=True))
    assert not torch.equal(center, teacher.head.center)


def test_pretraining_sees_training_split_slides_only(sample_project):
    ids = sample_project.ids
    with sample_project._transaction():
        sample_project.record(ids[0]).split = "val"
        sample_project.record(ids[1]).split = "test"
    data = prepare_data(sample_project, tiny("cass"))
    assert ids[0] not in data.tiles.slide_ids and ids[1] not in data.tiles.slide_ids
    assert set(data.tiles.slide_ids) == set(ids[2:])
