"""The Train form's segmentation choices beyond the preset: PiCIE's k and clustering interval, and encoders that
start from a self-supervised pretraining on the project's slides (the CLI's ``--init ssl``), new or reused, run
from the widget's own buttons with Stop and Resume across the two stages."""

from __future__ import annotations

import json

import pytest
from conftest import tiny_training

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from napari_s4mi.core.ssl_init import PENDING_FILE  # noqa: E402 (after the skips)
from napari_s4mi.widgets.train_form import SSL_ANEW, WEIGHTS_INIT, TrainForm  # noqa: E402

TIMEOUT_MS = 240_000


def test_picie_fields_and_encoder_start_follow_the_method(qtbot):
    form = TrainForm()
    qtbot.addWidget(form)
    form.method.setCurrentText("picie")
    assert form.clusters.isEnabled() and form.cluster_every.isEnabled() and not form.encoders.isEnabled()
    form.clusters.setValue(3)
    form.cluster_every.setValue(0)
    config = form.config()
    assert (config.clusters, config.cluster_every) == (3, 0)
    assert form.ssl_init() is None  # PiCIE's FPN has no encoder the segmentation pretraining prepares

    form.method.setCurrentText("supervised")
    assert not form.clusters.isEnabled() and form.encoders.isEnabled()
    assert form.encoders.currentText() == WEIGHTS_INIT and form.ssl_init() is None
    assert not form.pretrain_iterations.isEnabled()
    form.encoders.setCurrentText(SSL_ANEW)
    assert form.pretrain_iterations.isEnabled() and form.pretrain_iterations.value() == 500  # cpu-small's
    form.pretrain_iterations.setValue(40)
    assert form.ssl_init() == (None, {"iterations": 40})
    form.save_settings()

    again = TrainForm()
    qtbot.addWidget(again)
    again.load_settings()
    assert again.encoders.currentText() == SSL_ANEW and again.ssl_init() == (None, {"iterations": 40})
    again.method.setCurrentText("picie")
    assert again.clusters.value() == 2  # picie's preset again: k is the method's, not the last session's edit


def _wait_idle(qtbot, widget) -> None:
    qtbot.waitUntil(lambda: widget.job is not None and not widget.job.running, timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: not widget.job.worker.is_running, timeout=10_000)
    qtbot.wait(50)  # the queued finished signal reaches the widget


def _weights(run_dir) -> dict[str, str]:
    networks = json.loads((run_dir / "config.json").read_text())["config"]["networks"]
    return {name: spec["weights"] for name, spec in networks.items()}


def test_train_from_a_new_pretraining_stop_in_it_resume_both_then_reuse(s4mi_viewer, qtbot, sample_project):
    viewer, widgets = s4mi_viewer
    widgets["Project"].open_folder(str(sample_project.root))
    train_w = widgets["Train"]
    tiny_training(train_w, iterations=2)
    form = train_w.form
    form.method.setCurrentText("supervised")
    form.input_size.setValue(64)
    form.iterations.setValue(2)
    form.device.setCurrentText("cpu")
    form.precision.setCurrentText("fp32")
    form.encoders.setCurrentText(SSL_ANEW)
    form.pretrain_iterations.setValue(30)

    train_w.start_button.click()
    qtbot.waitUntil(
        lambda: train_w.display.stage == "pretraining" and train_w.progress_bar.value() >= 1, timeout=TIMEOUT_MS
    )
    train_w.stop_button.click()
    _wait_idle(qtbot, train_w)
    assert train_w.last_error is None and train_w.last_done.cancelled
    runs = sample_project.runs_dir
    (pretraining,) = runs.glob("*-cass-seg")
    segmentation = train_w.run_dir
    assert (pretraining / PENDING_FILE).is_file() and not (segmentation / "config.json").exists()

    train_w.resume_button.click()  # the stopped pretraining, then the segmentation run noted in it
    _wait_idle(qtbot, train_w)
    assert train_w.last_error is None
    done = train_w.last_done
    assert not done.cancelled and done.step == 2 and done.run_dir == segmentation
    assert train_w.display.stage == "segmentation" and "segmentation finished" in train_w.status.text()
    assert _weights(segmentation) == {"cnn": str(pretraining / "encoders" / "cnn.safetensors")}
    offered = [form.encoders.itemText(i) for i in range(form.encoders.count())]
    assert f"self-supervised: {pretraining.name}" in offered

    form.encoders.setCurrentText(f"self-supervised: {pretraining.name}")  # reuse: no second pretraining
    assert form.ssl_init() == (pretraining, {})
    train_w.start_button.click()
    _wait_idle(qtbot, train_w)
    assert train_w.last_error is None and not train_w.last_done.cancelled
    assert train_w.run_dir != segmentation and _weights(train_w.run_dir) == _weights(segmentation)
    assert list(runs.glob("*-cass-seg")) == [pretraining]
