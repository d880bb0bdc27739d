"""The live training curve: painted by the GUI thread with QPainter, a burst of steps folded into one paint."""

from __future__ import annotations

import threading

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from napari_s4mi.widgets import curve as curve_module  # noqa: E402 (after the skip)
from napari_s4mi.widgets.curve import TrainingCurve, binned, nice_ticks, tick_label  # noqa: E402


def test_long_curves_are_binned_to_their_means():
    steps = tuple(range(10_000))
    x, y = binned(steps, tuple(float(s % 2) for s in steps), max_points=100)
    assert len(x) == len(y) == 100
    assert np.allclose(y, 0.5) and x[0] == pytest.approx(49.5) and x[-1] == pytest.approx(9949.5)
    short_x, short_y = binned((1, 2, 3), (0.1, 0.2, 0.3))
    assert list(short_x) == [1, 2, 3] and list(short_y) == [0.1, 0.2, 0.3]


def test_nice_ticks_are_round_and_cover_the_range():
    assert nice_ticks(0, 1000, most=5) == [0, 500, 1000]
    assert nice_ticks(0, 1000, most=6) == [0, 200, 400, 600, 800, 1000]
    assert nice_ticks(0.31, 0.77, most=5) == [0.4, 0.5, 0.6, 0.7]
    assert nice_ticks(1, 1) == [1]
    assert tick_label(400.0) == "400" and tick_label(0.25) == "0.25"


def test_curve_is_painted_by_the_gui_thread_without_a_helper(qtbot):
    """New data only schedules a repaint: a burst of 3000 steps is one paint; the loss line is in it; no thread."""
    threads_before = set(threading.enumerate())
    widget = TrainingCurve()
    qtbot.addWidget(widget)
    widget.resize(400, 240)
    widget.show()
    qtbot.waitExposed(widget)
    paints = widget.redraws
    for step in range(1, 3001):
        widget.add_loss(step, 0.5 + 0.4 * np.sin(step / 50))
    widget.add_validation(3000, {"IoU": 0.7})
    widget.finish()
    qtbot.waitUntil(lambda: widget.shown_steps == 3000, timeout=20_000)  # the latest data ends up drawn
    assert widget.redraws - paints < 10, "a burst of steps is folded into few paints, not one per step"
    assert set(threading.enumerate()) <= threads_before, "no drawing thread"
    pixels = _pixels(widget.image())
    assert pixels.shape[:2] == (240, 400)
    blue = (pixels[..., 2] > 150) & (pixels[..., 0] < 80) & (pixels[..., 1] > 90)  # the loss colour, #1f77b4
    assert blue.sum() > 300
    orange = (pixels[..., 0] > 200) & (pixels[..., 1] > 100) & (pixels[..., 1] < 160) & (pixels[..., 2] < 60)
    assert orange.sum() > 5, "the validation point and its legend entry"


def _pixels(image) -> np.ndarray:
    image = image.convertToFormat(image.Format.Format_RGBA8888)
    rows = np.frombuffer(image.constBits().asstring(image.sizeInBytes()), np.uint8)
    return rows.reshape(image.height(), image.bytesPerLine())[:, : 4 * image.width()].reshape(image.height(), -1, 4)


def test_empty_curve_says_what_it_waits_for(qtbot):
    """Before any step: no bare default axes, a sentence instead (rendered without a widget)."""
    empty = curve_module.render(curve_module.CurveData((), (), (), "first validation at step 100", "", 300, 200, 1.0))
    dark = (_pixels(empty)[..., :3].mean(axis=2) < 100).sum()
    assert 50 < dark < 4000, "a line of text, not axes with ticks and labels"


def test_curve_reloads_a_resumed_run_from_its_metrics(qtbot):
    widget = TrainingCurve()
    qtbot.addWidget(widget)
    records = [{"step": s, "loss": 1.0 / s} for s in range(1, 21)]
    records[9] |= {"iou_cnn": 0.4, "iou_mean": 0.5}
    records[19] |= {"iou_cnn": 0.6, "iou_mean": 0.55}
    from napari_s4mi.core.seg_config import CrossTeachingConfig

    widget.load_history(records, CrossTeachingConfig().headline)
    assert widget.steps == list(range(1, 21))
    assert widget.series == {"IoU": ([10, 20], [0.5, 0.6])}
    widget.add_loss(21, 0.04)
    assert widget.steps[-1] == 21 and len(widget.steps) == 21
