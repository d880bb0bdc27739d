"""The Project widget lists unreadable files as such: a grey "N unreadable files" line, not slides to annotate."""

from __future__ import annotations

import shutil

import pytest
from conftest import SAMPLE

pytest.importorskip("napari")
pytest.importorskip("pytestqt")


def test_unreadable_files_are_a_line_not_slides(make_napari_viewer, tmp_path):
    from napari_s4mi.widgets.project_widget import ProjectWidget

    images = tmp_path / "images"
    shutil.copytree(SAMPLE / "images", images)
    (images / "notes.png").write_text("not a picture")
    viewer = make_napari_viewer()
    widget = ProjectWidget(viewer)
    assert widget.unreadable_label.isHidden()
    widget.open_folder(str(images))
    names = [widget.slide_list.item(k).text().split()[0] for k in range(widget.slide_list.count())]
    assert len(names) == 10 and "notes.png" not in names
    assert not widget.unreadable_label.isHidden()
    assert widget.unreadable_label.text() == "1 unreadable file (not slides)"
    assert widget.unreadable_label.toolTip().startswith("notes.png: not a readable image")
