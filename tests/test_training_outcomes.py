"""What training must achieve and how it fails: networks come to agree, checkpoints reload exactly,
NaN and out-of-memory stop with a clear message and leave the project intact."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from conftest import REPO, tiny_config

from napari_s4mi.core.engine import prepare_data, train
from napari_s4mi.core.errors import TrainingError
from napari_s4mi.core.events import Done
from napari_s4mi.core.predictor import open_predictor


def disagreement(predictor, images) -> float:
    """Fraction of unlabeled pixels where the CNN's and the Swin's argmax differ."""
    from napari_s4mi.core.inputs import normalise_batch

    probs = predictor.method.predict(normalise_batch(images, predictor.red_norm))
    return float((probs["cnn"].argmax(1) != probs["swin"].argmax(1)).float().mean())


def test_networks_disagree_less_after_training(sample_project, tmp_path):
    config = tiny_config(iterations=25, val_every=1000, checkpoint_every=1000, lr=1e-3)
    unlabeled = prepare_data(sample_project, config).unlabeled.images
    list(train(sample_project, tiny_config(iterations=1, lr=1e-9), tmp_path / "start"))
    before = disagreement(open_predictor(tmp_path / "start", checkpoint="last"), unlabeled)
    list(train(sample_project, config, tmp_path / "trained"))
    after = disagreement(open_predictor(tmp_path / "trained", checkpoint="last"), unlabeled)
    assert after < before, (before, after)


def test_reloaded_checkpoint_predicts_identically(sample_project, tmp_path):
    from napari_s4mi.core.engine import BEST, LAST

    events = list(train(sample_project, tiny_config(iterations=2), tmp_path / "run"))
    assert isinstance(events[-1], Done)
    with sample_project.open_slide(sample_project.unannotated_ids()[0]) as slide:
        first = open_predictor(tmp_path / "run", device="cpu").predict(slide)
        again = open_predictor(tmp_path / "run", device="cpu").predict(slide)
        assert first.labels.shape == slide.shape
    np.testing.assert_array_equal(first.labels, again.labels)
    np.testing.assert_array_equal(first.disagreement, again.disagreement)
    assert (tmp_path / "run" / BEST).exists() and (tmp_path / "run" / LAST).exists()


def test_nan_loss_stops_with_message_and_keeps_project(sample_project, tmp_path):
    sample_project.assign_splits(val_fraction=0.2, seed=0)  # what training does first on a split-less project
    manifest = sample_project.manifest_path.read_bytes()
    masks = {p.name: p.read_bytes() for p in sample_project.masks_dir.iterdir()}
    with pytest.raises(TrainingError, match="lower the learning rate") as info:
        list(train(sample_project, tiny_config(iterations=30, lr=1e12), tmp_path / "run"))
    assert "\n" not in str(info.value)
    assert sample_project.manifest_path.read_bytes() == manifest
    assert {p.name: p.read_bytes() for p in sample_project.masks_dir.iterdir()} == masks


@pytest.mark.skipif(sys.platform != "linux", reason="address-space limits via resource are Linux-only here")
def test_out_of_memory_stops_with_message(sample_project, tmp_path):
    script = textwrap.dedent(f"""
        import resource, sys
        sys.path.insert(0, {str(REPO / "tests")!r})
        from conftest import tiny_config
        from napari_s4mi.core.project import Project
        from napari_s4mi.core.engine import train
        from napari_s4mi.core.errors import TrainingError
        import torch
        project = Project.open({str(sample_project.root)!r})
        events = train(project, tiny_config(labeled_batch=4096, input_size=256), {str(tmp_path / "run")!r})
        next(events)  # data loaded and networks built before the cap
        usage = int(open('/proc/self/statm').read().split()[0]) * resource.getpagesize()
        resource.setrlimit(resource.RLIMIT_AS, (usage + (1 << 30), resource.RLIM_INFINITY))
        try:
            list(events)
        except TrainingError as exc:
            print('MESSAGE:', exc)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert "MESSAGE: out of memory at step 0" in result.stdout, result.stdout + result.stderr[-2000:]
    assert "lower the batch or input size" in result.stdout
    assert torch.__version__


def test_demo_runs_headless(tmp_path, capsys):
    from napari_s4mi.cli import main

    assert main(["demo", "--out", str(tmp_path / "demo"), "--iterations", "2"]) == 0
    assert "held-back IoU" in capsys.readouterr().out
    assert (tmp_path / "demo" / "predictions" / "ISIC_0000124.png").exists()
    assert (tmp_path / "demo" / "overview.png").stat().st_size > 10_000
