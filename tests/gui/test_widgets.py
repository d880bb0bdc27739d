"""The napari front for real: a shown viewer on a virtual X server, real training and prediction workers."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from conftest import SAMPLE, tiny_training

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from s4mi_bench.event_loop import EventLoopGaps  # noqa: E402 (after the skips; benchmarks/ is on sys.path)

from napari_s4mi.core.events import Progress  # noqa: E402
from napari_s4mi.widgets.session import session_for  # noqa: E402

TRAIN_TIMEOUT_MS = 240_000


def _wait_idle(qtbot, widget, timeout=TRAIN_TIMEOUT_MS):
    qtbot.waitUntil(lambda: widget.job is not None and not widget.job.running, timeout=timeout)
    qtbot.waitUntil(lambda: not widget.job.worker.is_running, timeout=10_000)
    qtbot.wait(50)  # let the queued finished signal reach the widget


def _paint_dabs(layer, points, label=1, size=20):
    layer.brush_size = size
    layer.selected_label = label
    for point in points:
        layer.paint(point, label)


def test_annotate_train_stop_resume_predict(s4mi_viewer, qtbot, sample_project):
    viewer, widgets = s4mi_viewer
    project_w, train_w, predict_w = widgets["Project"], widgets["Train"], widgets["Predict"]
    project_w.open_folder(str(sample_project.root))
    session = session_for(viewer)
    slide_id = session.slide_id
    assert slide_id in sample_project.unannotated_ids()  # the suggestion is a slide still to annotate
    assert "8 of 10 annotated" in project_w.count_label.text()

    labels = session.layers["labels"]
    _paint_dabs(labels, [(100, 100), (120, 120), (140, 140)])
    assert labels.data.sum() > 0
    project_w.annotated_button.click()
    assert sample_project.__class__.open(sample_project.root).record(slide_id).annotated
    assert "9 of 10 annotated" in project_w.count_label.text()
    painted = sample_project.read_mask(slide_id)
    assert np.array_equal(painted, np.asarray(labels.data))

    tiny_training(train_w, iterations=8)
    gaps = EventLoopGaps().start()
    train_w.start_button.click()
    assert not train_w.start_button.isEnabled() and train_w.stop_button.isEnabled()
    step_times: list[float] = []
    train_w.job.worker.yielded.connect(
        lambda event: step_times.append(time.perf_counter()) if isinstance(event, Progress) else None
    )
    qtbot.waitUntil(lambda: train_w.progress_bar.value() >= 2, timeout=TRAIN_TIMEOUT_MS)
    stop_asked = time.perf_counter()
    train_w.stop_button.click()
    qtbot.waitUntil(lambda: not train_w.job.running, timeout=TRAIN_TIMEOUT_MS)
    stop_latency = time.perf_counter() - stop_asked
    _wait_idle(qtbot, train_w)
    gaps.stop()
    assert train_w.last_error is None
    stopped = train_w.last_done
    assert stopped is not None and stopped.cancelled and 2 <= stopped.step < 8
    longest_step = max(b - a for a, b in zip(step_times, step_times[1:], strict=False)) if len(step_times) > 1 else 0
    assert stop_latency <= longest_step + 2.0, "Stop must end the run within a step + 2 s"
    state = json.loads((train_w.run_dir / "last" / "state.json").read_text())
    assert state["step"] == stopped.step
    assert gaps.longest_ms() < 1000.0, f"the event loop froze for {gaps.longest_ms():.0f} ms during training"
    assert train_w.start_button.isEnabled() and train_w.resume_button.isEnabled()
    assert len(train_w.curve.steps) >= 2

    train_w.resume_button.click()
    _wait_idle(qtbot, train_w)
    assert train_w.last_error is None
    assert train_w.last_done.step == 8 and not train_w.last_done.cancelled
    assert train_w.curve.steps == list(range(1, 9)), "after Resume the curve shows the whole run"
    qtbot.waitUntil(lambda: train_w.curve.shown_steps == len(train_w.curve.steps), timeout=20_000)
    assert predict_w.run_box.count() == 1
    cleared: list[int] = []  # a training job's every checkpoint asks for a refresh: same runs, no rebuild
    predict_w.run_box.currentIndexChanged.connect(cleared.append)
    predict_w.refresh_runs()
    assert cleared == [] and predict_w.run_box.currentData() == str(train_w.run_dir)
    predict_w.run_box.currentIndexChanged.disconnect(cleared.append)

    before = viewer.screenshot(canvas_only=True, flash=False)
    predict_w.scope.setCurrentText("current slide")
    predict_w.disagreement.setChecked(True)
    assert predict_w.whole_slides.isVisibleTo(predict_w) and not predict_w.whole_slides.isChecked()
    predict_w.predict_button.click()
    _wait_idle(qtbot, predict_w)
    assert predict_w.last_error is None
    with sample_project.open_slide(slide_id) as slide:
        shape = slide.shape
    prediction = session.layers["prediction"]
    assert prediction.data.shape == shape
    assert session.layers["disagreement"].visible
    assert sample_project.has_prediction(slide_id)
    qtbot.wait(100)
    after = viewer.screenshot(canvas_only=True, flash=False)
    assert before.shape == after.shape and np.abs(before.astype(int) - after.astype(int)).sum() > 0

    layer_count = len(viewer.layers)
    predict_w.scope.setCurrentText("unannotated slides")
    predict_w.predict_button.click()
    _wait_idle(qtbot, predict_w)
    assert set(predict_w.predicted) == set(type(sample_project).open(sample_project.root).unannotated_ids())
    assert all(sample_project.has_prediction(i) for i in predict_w.predicted)
    assert len(viewer.layers) == layer_count  # only the slide on show has result layers
    slide_list = widgets["Project"].slide_list
    rows = [slide_list.item(i).text() for i in range(slide_list.count())]
    assert {row.split()[0] for row in rows if "predicted" in row} >= set(predict_w.predicted)

    predict_w.accept_button.click()
    assert np.array_equal(np.asarray(session.layers["labels"].data), np.asarray(prediction.data))
    session.autosaver.flush(wait=True)
    assert np.array_equal(sample_project.read_mask(slide_id), np.asarray(prediction.data))


def test_switching_slides_replaces_layers(s4mi_viewer, sample_project):
    viewer, widgets = s4mi_viewer
    widgets["Project"].open_folder(str(sample_project.root))
    session = session_for(viewer)
    first = set(map(id, viewer.layers))
    assert len(viewer.layers) == 2
    for _ in range(3):
        session.step_slide(+1)
        assert len(viewer.layers) == 2
        assert {layer.metadata["s4mi_slide"] for layer in viewer.layers} == {session.slide_id}
    assert not first & set(map(id, viewer.layers))
    widgets["Project"].slide_list.setCurrentRow(0)
    assert session.slide_id == sample_project.ids[0] and len(viewer.layers) == 2
    assert viewer.layers[0].data.shape[:2] == sample_project.read_mask(sample_project.ids[0]).shape


def test_deleted_or_renamed_layers_do_not_break_the_widgets(s4mi_viewer, sample_project):
    viewer, widgets = s4mi_viewer
    widgets["Project"].open_folder(str(sample_project.root))
    session = session_for(viewer)
    slide_id = session.slide_id
    labels = session.layers["labels"]
    _paint_dabs(labels, [(100, 100)])
    viewer.layers.remove(labels)  # the strokes are saved before the layer is forgotten
    session.autosaver.flush(wait=True)
    assert sample_project.read_mask(slide_id).sum() == np.asarray(labels.data).sum() > 0
    session.layers["image"].name = "renamed by the user"
    viewer.layers.remove(session.layers["image"])
    assert session.layers == {}
    widgets["Project"].annotated_button.click()  # uses the saved mask, no layer needed
    assert sample_project.__class__.open(sample_project.root).record(slide_id).annotated
    session.step_slide(+1)
    session.step_slide(-1)
    assert session.slide_id == slide_id and set(session.layers) == {"image", "labels"}
    assert np.array_equal(np.asarray(session.layers["labels"].data), sample_project.read_mask(slide_id))
    viewer.layers.clear()
    widgets["Project"].next_button.click()
    assert len(viewer.layers) == 2


def test_autosave_writes_only_changed_masks(s4mi_viewer, qtbot, sample_project):
    viewer, widgets = s4mi_viewer
    widgets["Project"].open_folder(str(sample_project.root))
    session = session_for(viewer)
    annotated = sample_project.annotated_ids()
    stamps = {i: sample_project.mask_path(i).stat().st_mtime_ns for i in annotated}
    for slide_id in annotated[:3]:  # looked at, not edited
        session.show_slide(slide_id)
    edited = annotated[4]
    session.show_slide(edited)
    _paint_dabs(session.layers["labels"], [(200, 200)], size=30)
    qtbot.waitUntil(lambda: session.autosaver.writes >= 1, timeout=10_000)  # the debounce timer fired
    session.show_slide(annotated[0])
    session.autosaver.flush(wait=True)
    changed = [i for i in annotated if sample_project.mask_path(i).stat().st_mtime_ns != stamps[i]]
    assert edited in changed
    assert changed == [edited]
    assert session.autosaver.writes == 1
    for slide_id in annotated[:3]:
        assert slide_id not in changed


def test_closing_the_viewer_during_training_leaves_a_valid_checkpoint(make_napari_viewer, qtbot, sample_project):
    from napari_s4mi.core.predictor import open_predictor
    from napari_s4mi.widgets.launch import dock_widgets

    viewer = make_napari_viewer(show=True)
    widgets = dock_widgets(viewer)
    widgets["Project"].open_folder(str(sample_project.root))
    train_w = widgets["Train"]
    tiny_training(train_w, iterations=500)
    train_w.start_button.click()
    qtbot.waitUntil(lambda: train_w.progress_bar.value() >= 1, timeout=TRAIN_TIMEOUT_MS)
    job = train_w.job
    tick = time.perf_counter()
    viewer.close()
    assert not job.running, "closing napari must wait for the run to stop"
    assert time.perf_counter() - tick < 30
    state = json.loads((train_w.run_dir / "last" / "state.json").read_text())
    assert 1 <= state["step"] < 500
    predictor = open_predictor(train_w.run_dir, device="cpu")
    assert predictor.step == state["step"]
    qtbot.waitUntil(lambda: not job.worker.is_running, timeout=10_000)


def test_closing_the_train_dock_stops_the_run_with_a_checkpoint(s4mi_viewer, qtbot, sample_project):
    viewer, widgets = s4mi_viewer
    widgets["Project"].open_folder(str(sample_project.root))
    train_w = widgets["Train"]
    tiny_training(train_w, iterations=500)
    train_w.start_button.click()
    qtbot.waitUntil(lambda: train_w.progress_bar.value() >= 1, timeout=TRAIN_TIMEOUT_MS)
    viewer.window.remove_dock_widget(train_w)  # what the dock's close button does
    assert not train_w.job.running
    state = json.loads((train_w.run_dir / "last" / "state.json").read_text())
    assert 1 <= state["step"] < 500
    qtbot.waitUntil(lambda: not train_w.job.worker.is_running, timeout=10_000)


def test_training_errors_reach_the_user_and_the_widget_recovers(s4mi_viewer, qtbot, tmp_path):
    import shutil

    viewer, widgets = s4mi_viewer
    slides = tmp_path / "slides"
    slides.mkdir()
    for image in sorted((SAMPLE / "images").iterdir())[:3]:
        shutil.copy(image, slides / image.name)
    widgets["Project"].open_folder(str(slides))  # a new project: nothing annotated yet
    train_w = widgets["Train"]
    tiny_training(train_w, iterations=4)
    train_w.start_button.click()
    _wait_idle(qtbot, train_w)
    assert train_w.last_error is not None and "annotated" in train_w.last_error
    assert train_w.start_button.isEnabled() and not train_w.stop_button.isEnabled() and train_w.form.isEnabled()
    train_w.form.lr.setText("abc")
    train_w.start_button.click()  # refused up front with a message, nothing started
    assert train_w.job.finished.is_set()


def test_train_settings_are_remembered(make_napari_viewer):
    from napari_s4mi.widgets.train_widget import TrainWidget

    viewer = make_napari_viewer()
    first = TrainWidget(viewer)
    tiny_training(first, iterations=123, input_size=96)
    first.form.lr.setText("0.0005")
    first.form.save_settings()
    second = TrainWidget(make_napari_viewer())
    assert second.form.iterations.value() == 123 and second.form.input_size.value() == 96
    assert second.form.config().lr == pytest.approx(5e-4)
    assert second.form.config().networks["cnn"]["encoder"] == "resnet18"


def test_reader_claims_only_project_folders(s4mi_viewer, sample_project, tmp_path):
    from napari_s4mi.widgets.launch import get_reader

    viewer, widgets = s4mi_viewer
    assert get_reader(str(tmp_path)) is None
    assert get_reader(str(SAMPLE / "images")) is None
    assert get_reader(str(sample_project.root)) is not None
    viewer.open(str(sample_project.root), plugin="napari-s4mi")
    session = session_for(viewer)
    assert session.project.root == sample_project.root
    assert set(session.layers) >= {"image", "labels"} and len(viewer.layers) == 2
    assert widgets["Project"].slide_list.count() == 10


def test_sample_data_opens_the_sample_project(s4mi_viewer, tmp_path):
    viewer, widgets = s4mi_viewer
    viewer.open_sample("napari-s4mi", "sample-project")
    session = session_for(viewer)
    assert session.project.root == tmp_path / "sample-project"
    assert len(session.project.annotated_ids()) == 8
    assert {"image", "labels"} <= set(session.layers)
    assert "8 of 10" in widgets["Project"].count_label.text()


@pytest.mark.slow
def test_short_training_in_the_gui_predicts_a_held_back_slide(s4mi_viewer, qtbot, sample_project):
    """The sample project's 8 annotated slides, 60 cpu-small steps at 128 px, then the held-back slide."""
    from napari_s4mi.core.io import read_mask
    from napari_s4mi.core.sample import HELD_BACK

    viewer, widgets = s4mi_viewer
    widgets["Project"].open_folder(str(sample_project.root))
    session = session_for(viewer)
    held_back = HELD_BACK[1]
    session.show_slide(held_back)
    train_w, predict_w = widgets["Train"], widgets["Predict"]
    tiny_training(train_w, iterations=60, input_size=128)
    train_w.form.labeled_batch.setValue(4)
    train_w.form.unlabeled_batch.setValue(4)
    train_w.start_button.click()
    _wait_idle(qtbot, train_w, timeout=900_000)
    assert train_w.last_error is None and train_w.last_done.step == 60
    predict_w.refresh_runs()
    predict_w.scope.setCurrentText("current slide")
    predict_w.predict_button.click()
    _wait_idle(qtbot, predict_w)
    predicted = np.asarray(session.layers["prediction"].data) > 0
    truth = read_mask(SAMPLE / "masks" / (held_back.replace(".jpg", "_segmentation.png"))) > 0
    assert predicted.shape == truth.shape
    iou = (predicted & truth).sum() / max((predicted | truth).sum(), 1)
    assert iou > 0.5, f"held-back IoU {iou:.3f}"


def test_widgets_open_with_project_in_front_and_train_in_sight(s4mi_viewer, qtbot):
    viewer, widgets = s4mi_viewer
    qtbot.wait(100)
    window = viewer.window._qt_window

    def dock_of(widget):
        parent = widget.parent()
        while parent is not None and not hasattr(parent, "setFloating"):
            parent = parent.parent()
        return parent

    project, train, predict = (dock_of(widgets[n]) for n in ("Project", "Train", "Predict"))
    assert predict in window.tabifiedDockWidgets(project)  # Predict is a tab beside Project ...
    assert train not in window.tabifiedDockWidgets(project)  # ... and Train stays in sight below them
    shown = {name: not widget.visibleRegion().isEmpty() for name, widget in widgets.items()}
    assert shown == {"Project": True, "Train": True, "Predict": False}, "Project in front, Train in sight"


def test_suggestion_names_the_last_unannotated_slide(s4mi_viewer, tmp_path):
    from napari_s4mi.core.sample import create_sample_project

    viewer, widgets = s4mi_viewer
    names = ("ISIC_0000126.jpg",)  # one slide left to annotate
    project = create_sample_project(tmp_path / "one-left", hold_back=names)
    widgets["Project"].open_folder(str(project.root))
    session = session_for(viewer)
    assert session.slide_id == "ISIC_0000126.jpg"  # shown because it is the one to annotate
    text = widgets["Project"].count_label.text()
    assert "none (all done)" not in text and "ISIC_0000126" in text


def test_reopened_project_selects_the_editable_mask_over_result_layers(s4mi_viewer, sample_project, qtbot):
    viewer, widgets = s4mi_viewer
    slide_id = sample_project.unannotated_ids()[0]
    labels = np.zeros((256, 256), np.uint8)
    labels[50:100, 50:100] = 1
    sample_project.save_prediction(slide_id, labels, np.full((256, 256), 0.3, np.float32))
    widgets["Project"].open_folder(str(sample_project.root))
    session = session_for(viewer)
    session.show_slide(slide_id)
    assert "prediction" in session.layers  # result layers were added after the mask ...
    qtbot.waitUntil(lambda: viewer.layers.selection.active is session.layers["labels"], timeout=2000)  # ... it wins
    assert session.layers["labels"].mode == "paint"


def test_disagreement_overlay_keeps_the_slide_readable(s4mi_viewer, sample_project, qtbot):
    """Where the networks agree the slide shows unchanged; the overlay no longer washes it out (additive)."""
    viewer, widgets = s4mi_viewer
    slide_id = sample_project.unannotated_ids()[0]
    disagreement = np.full((256, 256), 0.1, np.float32)  # the networks mostly agree ...
    disagreement[100:150, 100:150] = 1.0  # ... but not here
    sample_project.save_prediction(slide_id, np.zeros((256, 256), np.uint8), disagreement)
    widgets["Project"].open_folder(str(sample_project.root))
    session = session_for(viewer)
    session.show_slide(slide_id)
    session.layers["labels"].visible = False
    session.layers["prediction"].visible = False
    without = viewer.screenshot(canvas_only=True, flash=False)
    session.set_disagreement_visible(True)
    layer = session.layers["disagreement"]
    assert layer.blending != "additive"
    qtbot.wait(50)
    with_overlay = viewer.screenshot(canvas_only=True, flash=False)
    h, w = min(without.shape[0], with_overlay.shape[0]), min(without.shape[1], with_overlay.shape[1])
    difference = with_overlay[:h, :w, :3].astype(int) - without[:h, :w, :3].astype(int)
    changed = np.abs(difference).max(axis=2) > 8
    assert 0 < changed.mean() < 0.2, "only the disagreeing square is coloured, not the whole slide"
