"""An experiment's table and plot open from the plugin: the Experiment dock widget reads an `s4mi experiment` folder,
shows the headline metric's table (mean ± CI per method and label fraction), switches metrics, and puts plot.png in
the viewer as one RGB image layer; importing it loads no torch."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from napari_s4mi.core.experiment.report import write_report  # noqa: E402
from napari_s4mi.widgets.experiment_widget import ExperimentWidget  # noqa: E402


def fake_experiment(folder):
    """A segmentation experiment's report from hand-made results: two methods, two fractions, three seeds."""
    (folder / "runs").mkdir(parents=True)
    (folder / "experiment.json").write_text(
        json.dumps({"settings": {"task": "segmentation", "preset": "cpu-small"}, "projects": {}})
    )
    for method, base in (("cross-teaching", 0.70), ("supervised", 0.60)):
        for fraction in (0.1, 1.0):
            for seed, delta in enumerate((-0.01, 0.0, 0.01)):
                value = base + fraction / 10 + delta
                metrics = {"iou": value, "dice": value + 0.1, "iou_per_image": value, "dice_per_image": value}
                name = f"{method}-{fraction * 100:g}-seed{seed}"
                result = {"name": name, "method": method, "fraction": fraction, "seed": seed, "metrics": metrics}
                result |= {"test_slides": 4, "params": {"total": 14_300_000}}
                (folder / "runs" / name).mkdir()
                (folder / "runs" / name / "result.json").write_text(json.dumps(result))
    write_report(folder)
    return folder


def test_experiment_table_and_plot_open_in_napari(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-s4mi", "Experiment")  # from the plugin's manifest
    assert isinstance(widget, ExperimentWidget)
    folder = fake_experiment(tmp_path / "exp")
    assert widget.open_experiment(folder)
    assert widget.metric.currentData() == "iou" and widget.metric.currentText() == "IoU (pooled)"  # the headline
    header = [widget.table.horizontalHeaderItem(c).text() for c in range(widget.table.columnCount())]
    assert header == ["method", "params", "10%", "100%"]
    assert widget.cells() == [
        ["cross-teaching", "14.3M", "0.710 ± 0.025", "0.800 ± 0.025"],
        ["supervised", "14.3M", "0.610 ± 0.025", "0.700 ± 0.025"],
    ]
    widget.metric.setCurrentIndex(widget.metric.findData("dice"))
    assert widget.cells()[0][2] == "0.810 ± 0.025"
    assert "12 finished run(s)" in widget.status.text()

    layer = viewer.layers["experiment plot: exp"]
    assert layer.rgb and layer.data.ndim == 3 and layer.data.shape[2] == 3 and layer.data.shape[1] > 500
    assert widget.open_experiment(folder)  # opening again refreshes the one layer
    assert [lay.name for lay in viewer.layers].count("experiment plot: exp") == 1
    assert not widget.open_experiment(tmp_path / "not-an-experiment")
    assert widget.folder == folder


def test_the_widget_module_loads_no_torch():
    code = "import sys, napari_s4mi.widgets.experiment_widget; assert 'torch' not in sys.modules, 'torch imported'"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
