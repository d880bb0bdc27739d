"""The training loop on the real sample slides: cross-teaching math, data streams, seeds, checkpoints."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from conftest import tiny_config

from napari_s4mi.core.data import plan_data
from napari_s4mi.core.engine import prepare_data, train
from napari_s4mi.core.events import CancelToken, Checkpoint, Done, Progress, Validation
from napari_s4mi.core.inputs import normalise_batch
from napari_s4mi.core.methods import build_method
from napari_s4mi.core.runs import read_metrics, read_run_config


def run_all(events):
    return list(events)


def losses_of(events):
    return [e.loss for e in events if isinstance(e, Progress)]


def test_unlabeled_term_gives_gradient(sample_project):
    config = tiny_config()
    method = build_method(config, {"classes": ["background", "foreground"]}, torch.device("cpu"), "fp32")
    data = prepare_data(sample_project, config)
    x_u = normalise_batch(data.unlabeled.images[:2], data.red_norm)
    x_l = x_u[:0]
    # only the unlabeled cross-teaching term: gradients must reach both networks
    from napari_s4mi.core.losses import cross_teaching_loss

    loss = cross_teaching_loss(method.forward("cnn", x_u), method.forward("swin", x_u))
    loss.backward()
    for name, net in method.networks.items():
        grad = sum(p.grad.abs().sum().item() for p in net.parameters() if p.grad is not None)
        assert grad > 0, f"{name} received no gradient from the unlabeled term"
    assert len(x_l) == 0


def test_unlabeled_stream_never_opens_a_mask(sample_project):
    opened: list[str] = []

    def audit(event, args):
        if event == "open" and isinstance(args[0], str | bytes | object):
            opened.append(str(args[0]))

    config = tiny_config(label_fraction=0.5, iterations=2)
    plan = plan_data(sample_project, config.label_fraction, config.seed)
    assert plan.hidden, "half the labels must be hidden"
    sys.addaudithook(audit)
    run_all(train(sample_project, config, sample_project.root / "runs" / "a"))
    hidden_masks = {str(sample_project.mask_path(i)) for i in plan.hidden}
    labeled_masks = {str(sample_project.mask_path(i)) for i in plan.labeled}
    touched = set(opened)
    assert labeled_masks & touched, "the audit hook saw no mask at all: the test would prove nothing"
    assert not hidden_masks & touched


def test_full_labels_terminates_and_reuses_labeled_images(sample_project):
    config = tiny_config(label_fraction=1.0, iterations=3)
    data = prepare_data(sample_project, config)
    assert not data.plan.hidden
    events = run_all(train(sample_project, config, sample_project.root / "runs" / "full"))
    done = events[-1]
    assert isinstance(done, Done) and done.step == 3 and not done.cancelled
    parts = [e.parts for e in events if isinstance(e, Progress)]
    assert all(p["unsupervised"] > 0 for p in parts), "the unlabeled stream must draw labeled images, masks hidden"


def test_one_annotated_slide_trains(tmp_path):
    from napari_s4mi.core.sample import create_sample_project

    names = tuple(f"ISIC_0000{n}.jpg" for n in (113, 116, 119, 120, 121, 122, 123, 124, 126))
    project = create_sample_project(tmp_path / "p", hold_back=names)
    assert len(project.annotated_ids()) == 1
    config = tiny_config(iterations=3)
    events = run_all(train(project, config, tmp_path / "run"))
    assert isinstance(events[-1], Done) and events[-1].step == 3
    assert all(np.isfinite(losses_of(events)))
    assert not any(isinstance(e, Validation) for e in events)


def test_same_seed_same_first_losses(sample_project, tmp_path):
    first = losses_of(train(sample_project, tiny_config(iterations=3), tmp_path / "r1"))
    second = losses_of(train(sample_project, tiny_config(iterations=3), tmp_path / "r2"))
    other = losses_of(train(sample_project, tiny_config(iterations=3, seed=5), tmp_path / "r3"))
    np.testing.assert_allclose(first, second, rtol=1e-6, atol=1e-7)
    assert not np.allclose(first, other)


def test_cancel_resume_continues_step_count(sample_project, tmp_path):
    run_dir = tmp_path / "run"
    cancel = CancelToken()
    seen = []
    for event in train(sample_project, tiny_config(iterations=6), run_dir, cancel):
        seen.append(event)
        if isinstance(event, Progress) and event.step == 3:
            cancel.cancel()
    done = seen[-1]
    assert isinstance(done, Done) and done.cancelled and done.step == 3
    assert any(isinstance(e, Checkpoint) and e.kind == "last" and e.step == 3 for e in seen)
    resumed = run_all(train(sample_project, tiny_config(iterations=6), run_dir, resume=True))
    steps = [e.step for e in resumed if isinstance(e, Progress)]
    assert steps == [4, 5, 6]
    assert [r["step"] for r in read_metrics(run_dir)] == [1, 2, 3, 4, 5, 6]


def test_resume_matches_uninterrupted_run(sample_project, tmp_path):
    straight = losses_of(train(sample_project, tiny_config(iterations=4), tmp_path / "s"))
    cancel = CancelToken()
    for event in train(sample_project, tiny_config(iterations=4), tmp_path / "c", cancel):
        if isinstance(event, Progress) and event.step == 2:
            cancel.cancel()
    resumed = losses_of(train(sample_project, tiny_config(iterations=4), tmp_path / "c", resume=True))
    np.testing.assert_allclose(straight[2:], resumed, rtol=1e-5)


def test_run_folder_records_config_and_metrics(sample_project, tmp_path):
    events = run_all(train(sample_project, tiny_config(iterations=4), tmp_path / "run"))
    record = read_run_config(tmp_path / "run")
    assert record["seed"] == 0 and record["versions"]["torch"] == torch.__version__.split("+")[0]
    assert len(record["data_hash"]) == 16 and record["data"]["labeled"]
    assert (tmp_path / "run" / "last" / "cnn.safetensors").exists()
    assert (tmp_path / "run" / "best" / "swin.safetensors").exists()
    vals = [e for e in events if isinstance(e, Validation)]
    assert vals and set(vals[0].metrics) == {"iou_cnn", "iou_swin", "iou_mean"}
    assert "iou_cnn" in read_metrics(tmp_path / "run")[1]


def test_existing_run_is_not_overwritten(sample_project, tmp_path):
    from napari_s4mi.core.errors import InputError

    run_all(train(sample_project, tiny_config(iterations=2), tmp_path / "run"))
    with pytest.raises(InputError, match="already holds a run"):
        run_all(train(sample_project, tiny_config(iterations=2), tmp_path / "run"))


def test_supervised_baseline_trains_one_network(sample_project, tmp_path):
    config = tiny_config(method="supervised", iterations=2)
    events = run_all(train(sample_project, config, tmp_path / "sup"))
    assert isinstance(events[-1], Done)
    assert sorted(p.name for p in (tmp_path / "sup" / "last").glob("*.safetensors")) == [
        "cnn.safetensors",
        "optimizer.safetensors",
    ]


def test_prefetched_batches_are_the_sampler_batches(sample_project):
    import threading

    from napari_s4mi.core.tasks.base import PrefetchedBatches

    data = prepare_data(sample_project, tiny_config())
    drawn_on = []

    def draw(step):
        drawn_on.append(threading.current_thread().name)
        return data.batch(step)

    batches = PrefetchedBatches(draw, end_step=6)
    try:
        for step in (0, 1, 2, 4, 5):  # 4 after 2: a jump (as on resume) is drawn in line, then prefetching goes on
            got, expected = batches.get(step), data.batch(step)
            assert got.keys() == expected.keys() == {"x_l", "y_l", "x_u"}
            assert all(np.array_equal(got[k], expected[k]) for k in got), f"step {step}"
    finally:
        batches.close()
    assert any(name.startswith("s4mi-batches") for name in drawn_on)  # the next batches came from the helper
    assert not any(t.name.startswith("s4mi-batches") and t.is_alive() for t in threading.enumerate())
