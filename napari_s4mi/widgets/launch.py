"""Ways into the plugin: the folder reader, the sample project, docking the widgets, `s4mi napari`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from qtpy.QtCore import QTimer

from .session import project_root, session_for

PLUGIN = "napari-s4mi"
WIDGETS = ("Project", "Train", "Predict")
SAMPLE_ENV = "S4MI_SAMPLE_PROJECT"


# (widget, tabbed with the previous one): Predict shares a tab stack with Project; Train sits below them, so its
# progress stays in sight while the user browses slides
LAYOUT = (("Project", False), ("Predict", True), ("Train", False))


def dock_widgets(viewer: Any) -> dict[str, Any]:
    """Dock the Project, Train and Predict widgets (once), Project in front, and return them by name."""
    docked, docks = {}, {}
    for name, tabbed in LAYOUT:
        docks[name], docked[name] = viewer.window.add_plugin_dock_widget(PLUGIN, name, tabify=tabbed)
    docks["Project"].raise_()  # the tab in front, now and after napari's own raising of the last dock added
    QTimer.singleShot(0, docks["Project"].raise_)
    return {name: docked[name] for name in WIDGETS}


def open_in_viewer(viewer: Any, path: str | Path) -> list[tuple]:
    """Dock the widgets, open the project at ``path``, and return its shown slide's layer data."""
    dock_widgets(viewer)
    session = session_for(viewer)
    project = session.open_path(path, show=False)
    first = session.suggested() or (project.ids[0] if project.ids else None)
    return session.layer_data(first) if first is not None else [(None,)]


def get_reader(path: str | list[str]) -> Any:
    """npe2 reader: claim only folders holding an S4MI project manifest (others stay napari's)."""
    if isinstance(path, list) or project_root(path) is None:
        return None
    return read_project


def read_project(path: str | list[str]) -> list[tuple]:
    import napari

    viewer = napari.current_viewer()
    if viewer is None:
        return [(None,)]
    return open_in_viewer(viewer, path if isinstance(path, str) else path[0])


def sample_project_dir() -> Path:
    """``$S4MI_SAMPLE_PROJECT``, else ``~/.cache/napari-s4mi/sample-project`` (kept between sessions)."""
    return Path(os.environ.get(SAMPLE_ENV) or Path.home() / ".cache" / PLUGIN / "sample-project")


def ensure_sample_project(project_dir: Path | None = None) -> Path:
    """The sample project (bundled ISIC slides, 2 held back unannotated), created on first use only."""
    from ..core.project import Project
    from ..core.sample import create_sample_project

    project_dir = Path(project_dir or sample_project_dir())
    if not Project.is_project(project_dir):
        create_sample_project(project_dir)
    return project_dir


def sample_project() -> list[tuple]:
    """napari sample data: the sample project opened in the current viewer with the widgets docked."""
    import napari

    viewer = napari.current_viewer()
    return open_in_viewer(viewer, ensure_sample_project())


def main(path: str | None = None, sample: bool = False) -> int:
    """`s4mi napari [PATH | --sample]`: start napari with the widgets docked and the project open.

    This process is S4MI's own, so process-wide tweaks (``core.host``) may apply here; in a plain ``napari`` with
    the plugin they do not."""
    import napari

    from ..core.host import claim_process

    claim_process("s4mi napari")

    viewer = napari.Viewer(title="napari-s4mi")
    target = ensure_sample_project() if sample else path
    if target is None:
        dock_widgets(viewer)
    else:
        session_for(viewer)  # adopts the layers that the reader data below creates
        for item in open_in_viewer(viewer, target):
            if item[0] is not None:
                viewer.add_layer(_layer(item))
    napari.run()
    return 0


def _layer(item: tuple) -> Any:
    from napari.layers import Layer

    return Layer.create(*item)
