"""Shared fixtures: offline hubs, the bundled sample project, a tiny training config."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"
if str(BENCHMARKS) not in sys.path:  # the benchmark package (`import s4mi_bench`) is not installed with the plugin
    sys.path.insert(0, str(BENCHMARKS))
SHARED_DATA = REPO.parent / "shared" / "data"
SAMPLE = REPO / "resources" / "sample"

# 2.2 M parameters (a ResNet-18 U-Net has 14.3 M): a checkpoint with its Adam moments is 26 MB, not 172 MB
TINY_CNN = {"arch": "unet", "encoder": "tu-mobilenetv3_small_050", "weights": "none"}
TINY_SWIN = {
    "arch": "swin_unet",
    "embed_dim": 24,
    "depths": [1, 1, 1, 1],
    "num_heads": [1, 2, 4, 8],
    "weights": "none",
}


def tiny_config(**overrides):
    """A segmentation config small enough for a unit test: 64 px, batch 2 + 2, fp32 on the CPU, tiny networks."""
    from napari_s4mi.core.registry import make_config

    settings = dict(
        iterations=4,
        input_size=64,
        labeled_batch=2,
        unlabeled_batch=2,
        precision="fp32",
        device="cpu",
        val_every=2,
        checkpoint_every=2,
        cnn=dict(TINY_CNN),
        swin=dict(TINY_SWIN),
    )
    settings.update(overrides)
    method = settings.pop("method", "cross-teaching")
    config = make_config("segmentation", method, "cpu-small")
    for name in ("cnn", "swin"):  # the tiny networks for those the method has
        spec = settings.pop(name)
        if name in config.networks:
            config.networks[name] = spec
    return config.override(**settings).validate()


@pytest.fixture
def sample_project(tmp_path):
    """The sample project (8 annotated slides, 2 held back unannotated) in a temporary folder."""
    from napari_s4mi.core.sample import create_sample_project

    return create_sample_project(tmp_path / "project")


def slide_folder_hash(folder: Path) -> dict[str, bytes]:
    """Bytes of every file in a folder, to show that slides stay untouched."""
    return {p.name: p.read_bytes() for p in sorted(Path(folder).iterdir()) if p.is_file()}


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path, monkeypatch):
    """Remembered settings and the sample project live in the test's temporary folder."""
    monkeypatch.setenv("S4MI_SETTINGS_DIR", str(tmp_path / "settings"))
    monkeypatch.setenv("S4MI_SAMPLE_PROJECT", str(tmp_path / "sample-project"))


@pytest.fixture
def s4mi_viewer(make_napari_viewer, qtbot):
    """(viewer, {"Project": ..., "Train": ..., "Predict": ...}) in a shown window; workers end at teardown."""
    from napari_s4mi.widgets.launch import dock_widgets

    viewer = make_napari_viewer(show=True)
    widgets = dock_widgets(viewer)
    yield viewer, widgets
    for name in ("Train", "Predict"):
        job = widgets[name].job
        if job is not None:
            job.stop(wait_s=120)
            assert not job.running, f"{name} worker still running at teardown"
            qtbot.waitUntil(lambda job=job: not job.worker.is_running, timeout=10_000)


def tiny_training(train_widget, iterations: int, input_size: int = 64) -> None:
    """Fill the Train form for a quick real run: ResNet-18 U-Net + small Swin, 2+2 per batch, fp32 CPU."""
    form = train_widget.form
    form.method.setCurrentText("cross-teaching")
    form.preset.setCurrentText("cpu-small")
    form.input_size.setValue(input_size)
    form.iterations.setValue(iterations)
    form.labeled_batch.setValue(2)
    form.unlabeled_batch.setValue(2)
    form.device.setCurrentText("cpu")
    form.precision.setCurrentText("fp32")
