"""PiCIE in the Train widget: the 0%-label method of the form, and the foreground-cluster row after a run."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from napari_s4mi.core.cluster_map import read_cluster_choice  # noqa: E402 (after the skip)
from napari_s4mi.core.registry import make_config  # noqa: E402
from napari_s4mi.core.runs import write_run_config  # noqa: E402
from napari_s4mi.widgets.cluster_choice import ClusterChoiceRow  # noqa: E402
from napari_s4mi.widgets.train_form import TrainForm  # noqa: E402


def test_picie_is_the_zero_label_method_of_the_form(qtbot):
    form = TrainForm()
    qtbot.addWidget(form)
    form.method.setCurrentText("picie")
    assert not form.label_fraction.isEnabled() and form.label_fraction.value() == 0.0
    assert form._rows.labelForField(form.labeled_batch).text() == "images per batch"
    config = form.config()
    assert config.method == "picie" and config.label_fraction == 0.0
    form.method.setCurrentText("supervised")
    assert form.label_fraction.isEnabled() and form.config().label_fraction == 1.0


def fake_picie_run(folder, fitted: list[int] | None):
    """A run folder as a PiCIE training leaves it, its best/ network holding only the fitted map."""
    from safetensors.numpy import save_file

    write_run_config(folder, make_config("segmentation", "picie").to_dict(), {"val": []}, {})
    if fitted is not None:
        (folder / "best").mkdir()
        save_file({"cluster_map": np.array(fitted, np.int64)}, str(folder / "best" / "cnn.safetensors"))
    return folder


def test_the_cluster_row_saves_the_users_pick_in_the_run(qtbot, tmp_path):
    row = ClusterChoiceRow()
    qtbot.addWidget(row)
    assert row.isHidden()
    run = fake_picie_run(tmp_path / "run", fitted=[1, 0])
    row.show_run(run)
    assert not row.isHidden() and row.combo.count() == 3 and "(0)" in row.combo.itemText(0)
    row.combo.setCurrentIndex(2)  # cluster 1
    assert read_cluster_choice(run).foreground == [1] and read_cluster_choice(run).in_use == [0, 1]
    row.combo.setCurrentIndex(0)
    assert read_cluster_choice(run).foreground == [] and read_cluster_choice(run).in_use == [1, 0]
    write_run_config(tmp_path / "other", make_config("segmentation", "supervised").to_dict(), {}, {})
    row.show_run(tmp_path / "other")
    assert row.isHidden()
    row.show_run(fake_picie_run(tmp_path / "unvalidated", fitted=None))
    assert "no validation masks" in row.combo.itemText(0)
