"""The classification front for real: label slides in a shown viewer, CASS pretraining then fine-tuning from the
Train widget's own controls, Stop during pretraining, prediction into the table, and a saliency layer."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from napari_s4mi.core.sample import create_cls_sample_project  # noqa: E402
from napari_s4mi.widgets.session import session_for  # noqa: E402

TIMEOUT_MS = 300_000


def wait_idle(qtbot, widget) -> None:
    qtbot.waitUntil(lambda: widget.job is not None and not widget.job.running, timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: not widget.job.worker.is_running, timeout=10_000)
    qtbot.wait(50)


def small_cls_form(train_w, pretrain_steps: int, steps: int) -> None:
    train_w.task.setCurrentText("classification")
    form = train_w.cls_form
    form.pretraining.setCurrentText("cass")
    form.reuse.setCurrentIndex(0)
    form.input_size.setValue(64)
    form.batch.setValue(4)
    form.pretrain_iterations.setValue(pretrain_steps)
    form.iterations.setValue(steps)
    form.device.setCurrentText("cpu")
    form.precision.setCurrentText("fp32")


def test_label_pretrain_finetune_predict_and_saliency(s4mi_viewer, qtbot, tmp_path):
    viewer, widgets = s4mi_viewer
    project_w, train_w, predict_w = widgets["Project"], widgets["Train"], widgets["Predict"]
    project = create_cls_sample_project(tmp_path / "project")
    project_w.open_folder(str(project.root))
    session = session_for(viewer)
    panel = project_w.labels_panel
    assert "10 of 12 labeled" in panel.count_label.text()

    # label the two unlabeled slides with the panel's own buttons
    for slide_id, name in (("ISIC_0000232.jpg", "nevus"), ("ISIC_0000281.jpg", "melanoma")):
        session.show_slide(slide_id)
        button = next(b for b in panel.buttons if b.property("class_name") == name)
        button.click()
        assert project.__class__.open(project.root).labels_of(slide_id) == [name]  # saved at once
        assert button.isChecked()
    assert "12 of 12 labeled" in panel.count_label.text()
    assert "melanoma" in project_w.slide_list.currentItem().text()  # shown in the slide list

    # pretraining then fine-tuning, as one job from the Train widget
    small_cls_form(train_w, pretrain_steps=3, steps=4)
    train_w.start_button.click()
    wait_idle(qtbot, train_w)
    assert train_w.last_error is None, train_w.last_error
    assert train_w.last_done is not None and train_w.last_done.step == 4 and not train_w.last_done.cancelled
    run = train_w.run_dir
    assert (run / "pretrain" / "last" / "cnn.safetensors").is_file() and (run / "last" / "vit.safetensors").is_file()
    assert "fine-tuning" in train_w.curve.title
    assert "finished" in train_w.status.text()

    # predict every slide: the table fills with probabilities
    predict_w.refresh_runs()
    predict_w.run_box.setCurrentIndex(predict_w.run_box.findData(str(run)))
    assert predict_w.cls_panel.isVisibleTo(predict_w) and not predict_w.disagreement.isVisibleTo(predict_w)
    assert not predict_w.whole_slides.isVisibleTo(predict_w)  # a segmentation option
    predict_w.scope.setCurrentText("all slides")
    predict_w.device.setCurrentText("cpu")
    predict_w.predict_button.click()
    wait_idle(qtbot, predict_w)
    assert predict_w.last_error is None, predict_w.last_error
    rows = predict_w.cls_panel.rows()
    assert len(rows) == 12
    assert all(abs(sum(probs) - 1.0) < 1e-3 for _, _, probs in rows)

    # a row's click shows its slide; its saliency comes as a layer of the slide's shape
    panel_cls = predict_w.cls_panel
    panel_cls.table.sortItems(2)  # sortable by a class's probability
    item = panel_cls.table.item(0, 0)
    panel_cls._show_row(item)
    assert session.slide_id == item.text()
    panel_cls.class_box.setCurrentText("melanoma")
    panel_cls.show_saliency()
    wait_idle(qtbot, panel_cls)
    assert panel_cls.last_error is None, panel_cls.last_error
    layer = session.layers["saliency"]
    assert layer.data.shape == (256, 256) and layer.data.dtype == np.float32
    assert 0.0 <= layer.data.min() and layer.data.max() <= 1.0 and layer.blending == "translucent"
    path = panel_cls.export_saliency()
    assert path.is_file()

    # accept the prediction as the slide's label
    panel_cls.accept_prediction()
    predicted = panel_cls.predicted[session.slide_id]
    assert project.__class__.open(project.root).labels_of(session.slide_id) == list(predicted)


def test_stop_during_pretraining_leaves_a_checkpoint_within_a_step(s4mi_viewer, qtbot, tmp_path):
    viewer, widgets = s4mi_viewer
    project_w, train_w = widgets["Project"], widgets["Train"]
    project = create_cls_sample_project(tmp_path / "project")
    project_w.open_folder(str(project.root))
    small_cls_form(train_w, pretrain_steps=50, steps=4)
    train_w.start_button.click()
    qtbot.waitUntil(lambda: train_w.progress_bar.value() >= 1, timeout=TIMEOUT_MS)
    assert train_w.display.stage == "pretraining"
    train_w.stop_button.click()
    stopped_at = train_w.progress_bar.value()
    wait_idle(qtbot, train_w)
    state = json.loads((train_w.run_dir / "pretrain" / "last" / "state.json").read_text())
    assert stopped_at <= state["step"] <= stopped_at + 1 < 50
    assert train_w.last_done.cancelled
    assert not (train_w.run_dir / "config.json").exists()  # fine-tuning never started
    # Resume continues the pretraining where it stopped
    train_w.resume_button.click()
    qtbot.waitUntil(lambda: train_w.progress_bar.value() > state["step"], timeout=TIMEOUT_MS)
    train_w.stop_button.click()
    wait_idle(qtbot, train_w)
    assert train_w.last_error is None
