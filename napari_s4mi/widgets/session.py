"""One viewer's S4MI state: the open project, the slide on show, its layers, the autosaver, shutdown hooks.

The Project, Train and Predict widgets are docked separately but share this object (one per viewer). It owns
the slide's layers: switching slides replaces them, and a layer the user deletes is simply forgotten (its mask
is saved first). Only the GUI thread calls it.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from napari.layers import Layer
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QEvent, QObject, QTimer, Signal

from ..core.errors import ProjectError, S4MIError
from ..core.project import DEFAULT_PROJECT_DIRNAME, Project
from ..core.suggest import suggest_next
from . import slide_layers as sl
from .autosave import MaskAutosaver

_SESSIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
ROLES = ("image", "labels", "prediction", "disagreement", "saliency")


def project_root(path: str | Path) -> Path | None:
    """The project folder that ``path`` is or holds (``<path>/.s4mi``), else None."""
    path = Path(path)
    for candidate in (path, path / DEFAULT_PROJECT_DIRNAME):
        if Project.is_project(candidate):
            return candidate
    return None


def session_for(viewer: Any) -> Session:
    """The viewer's session, created on first use."""
    session = _SESSIONS.get(viewer)
    if session is None:
        session = _SESSIONS[viewer] = Session(viewer)
    return session


class Session(QObject):
    """Project + current slide + its layers for one napari viewer."""

    project_changed = Signal()
    slide_changed = Signal(str)
    statuses_changed = Signal()  # annotated / predicted flags or the mask files changed
    runs_changed = Signal()

    def __init__(self, viewer: Any):
        super().__init__()
        self._viewer = weakref.ref(viewer)  # the session must not keep a closed viewer alive
        self.project: Project | None = None
        self.slide_id: str | None = None
        self.layers: dict[str, Any] = {}
        self.show_disagreement = False
        self._mask_on_disk: np.ndarray | None = None  # the shown slide's mask as loaded, for the autosaver
        self._adopting: str | None = None  # slide whose layers are being added ...
        self._expecting: set[str] = set()  # ... and the roles still to come
        self._shutdown_hooks: list[Callable[[], None]] = []
        self.autosaver = MaskAutosaver()
        self.autosaver.saved.connect(lambda _id: self.statuses_changed.emit())
        self.autosaver.failed.connect(show_error)
        viewer.layers.events.removed.connect(self._on_layer_removed)
        viewer.layers.events.inserted.connect(self._on_layer_inserted)
        self._watched: set[int] = set()  # ids only: a reference would keep a closed window alive

    @property
    def viewer(self) -> Any:
        viewer = self._viewer()
        if viewer is None:
            raise ProjectError("the napari viewer of this session was closed")
        return viewer

    # ------------------------------------------------------------------------------------------- project

    def open_path(self, path: str | Path, show: bool = True) -> Project:
        """Open the project a folder is or holds, or create one for a slide folder; S4MIError when neither."""
        root = project_root(path)
        project = Project.open(root) if root is not None else Project.create(path)
        self.set_project(project, show=show)
        return project

    def set_project(self, project: Project, show: bool = True) -> None:
        """Switch to a project (saving the mask being painted) and show its suggested slide."""
        self.autosaver.untrack()
        self._remove_layers()
        self.project, self.slide_id = project, None
        self.project_changed.emit()
        if show and project.ids:
            self.show_slide(self.suggested() or project.ids[0])

    def suggested(self) -> str | None:
        """The next slide to annotate (seeded random over the unannotated ones)."""
        return None if self.project is None else suggest_next(self.project, self.slide_id)

    def require_project(self) -> Project:
        if self.project is None:
            raise ProjectError("open a slide folder or project first (Project widget → Open folder)")
        return self.project

    # ------------------------------------------------------------------------------------------- slides

    def show_slide(self, slide_id: str) -> None:
        """Show a slide with its editable mask (and latest prediction), replacing the previous slide's layers."""
        project = self.require_project()
        project.record(slide_id)
        data = self.layer_data(slide_id)
        self._remove_layers()
        for item in data:
            self.viewer.add_layer(Layer.create(*item))
        self.viewer.reset_view()

    def layer_data(self, slide_id: str) -> list[sl.LayerData]:
        """Layer data of a slide; layers added from it (here or by napari's reader) are adopted as the slide's."""
        project = self.require_project()
        image = sl.image_layer(project, slide_id)
        level0 = image[0][0] if image[1]["multiscale"] else image[0]
        mask = sl.mask_array(project, slide_id, level0.shape[:2])
        data = [image, sl.labels_layer(mask, slide_id)]
        if project.has_prediction(slide_id):
            labels, disagreement = project.read_prediction(slide_id)
            data.append(sl.prediction_layer(labels, slide_id))
            if disagreement is not None:
                data.append(sl.disagreement_layer(disagreement, slide_id, self.show_disagreement))
        self.autosaver.untrack()
        self._adopting, self.slide_id = slide_id, slide_id
        self._expecting = {item[1]["metadata"][sl.ROLE_KEY] for item in data}
        self._mask_on_disk = mask
        return data

    def step_slide(self, offset: int) -> None:
        """Show the next (+1) or previous (−1) slide in folder order."""
        project = self.require_project()
        if not project.ids:
            return
        index = project.ids.index(self.slide_id) if self.slide_id in project.ids else -offset
        self.show_slide(project.ids[(index + offset) % len(project.ids)])

    def mark_annotated(self, flag: bool = True) -> None:
        """Save the current mask and mark the slide annotated (or not)."""
        project = self.require_project()
        if self.slide_id is None:
            raise ProjectError("no slide on show; pick one in the slide list")
        labels = self.layers.get("labels")
        if labels is not None:
            self.autosaver.flush(wait=True)
            if flag and not project.has_mask(self.slide_id):  # an empty mask is a valid annotation
                project.save_mask(self.slide_id, np.asarray(labels.data))
        project.set_annotated(self.slide_id, flag)
        self.statuses_changed.emit()

    # ------------------------------------------------------------------------------------------- predictions

    def show_prediction(self, slide_id: str, labels: np.ndarray, disagreement: np.ndarray | None) -> None:
        """Show a slide's prediction (and disagreement) over it, replacing the previous ones."""
        if slide_id != self.slide_id:
            return
        for role in ("prediction", "disagreement"):
            self._remove_role(role)
        self._adopting = slide_id
        self._expecting = {"prediction", "disagreement"} if disagreement is not None else {"prediction"}
        self.viewer.add_layer(Layer.create(*sl.prediction_layer(labels, slide_id)))
        if disagreement is not None:
            self.viewer.add_layer(Layer.create(*sl.disagreement_layer(disagreement, slide_id, self.show_disagreement)))
        if "labels" in self.layers:
            self.viewer.layers.selection.active = self.layers["labels"]
        self.statuses_changed.emit()

    def show_overlay(self, role: str, slide_id: str, data: sl.LayerData) -> Any:
        """Show a result layer of the slide on show (e.g. its saliency), replacing the previous one of that role;
        the mask stays selected. Returns the layer (None when another slide is on show now)."""
        if slide_id != self.slide_id:
            return None
        self._remove_role(role)
        self._adopting, self._expecting = slide_id, {role}
        self.viewer.add_layer(Layer.create(*data))
        return self.layers.get(role)

    def set_disagreement_visible(self, visible: bool) -> None:
        self.show_disagreement = visible
        if "disagreement" in self.layers:
            self.layers["disagreement"].visible = visible

    def accept_prediction(self) -> None:
        """Copy the shown prediction into the editable mask (saved by the autosaver, undo-able as a data change)."""
        prediction, labels = self.layers.get("prediction"), self.layers.get("labels")
        if prediction is None:
            raise ProjectError("no prediction on show for this slide; predict it first")
        if labels is None:
            self.show_slide(self.slide_id)
            prediction, labels = self.layers.get("prediction"), self.layers["labels"]
        labels.data = np.asarray(prediction.data).astype(labels.data.dtype, copy=True)
        self.autosaver.flush()

    # ------------------------------------------------------------------------------------------- layers

    def _on_layer_inserted(self, event: Any) -> None:
        layer = event.value
        meta = getattr(layer, "metadata", {}) or {}
        role = meta.get(sl.ROLE_KEY)
        if self._adopting is None or meta.get(sl.SLIDE_KEY) != self._adopting or role not in self._expecting:
            return
        self._expecting.discard(role)
        self.layers[role] = layer
        if role == "labels":
            for emitter in (layer.events.paint, layer.events.data, layer.events.labels_update):
                emitter.connect(self.autosaver.changed)
            self.autosaver.track(self.require_project(), self._adopting, lambda: layer.data, self._mask_on_disk)
            self.viewer.layers.selection.active = layer
            layer.mode = "paint"
            self.slide_changed.emit(self._adopting)
        if not self._expecting:
            self._adopting = None
            # napari selects each layer it inserts after this handler: select the mask in the next event-loop pass
            QTimer.singleShot(0, self.select_mask)

    def select_mask(self) -> None:
        """The editable mask selected, with its brush (not a result layer added over it)."""
        labels = self.layers.get("labels")
        if labels is not None and labels in self.viewer.layers:
            self.viewer.layers.selection.active = labels
            labels.mode = "paint"

    def _on_layer_removed(self, event: Any) -> None:
        layer = event.value
        for role, ours in list(self.layers.items()):
            if ours is layer:
                if role == "labels":
                    self.autosaver.untrack()  # saves the strokes it holds before forgetting it
                del self.layers[role]

    def _remove_role(self, role: str) -> None:
        layer = self.layers.pop(role, None)
        if layer is not None and layer in self.viewer.layers:
            self.viewer.layers.remove(layer)

    def _remove_layers(self) -> None:
        self.autosaver.untrack()
        for role in ROLES:
            self._remove_role(role)

    # ------------------------------------------------------------------------------------------- shutdown

    def on_shutdown(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` when the viewer closes (stop workers and save)."""
        self._shutdown_hooks.append(hook)

    def shutdown(self) -> None:
        """Save the mask and stop every worker (each leaves its checkpoint); safe to call again."""
        for hook in self._shutdown_hooks:
            try:
                hook()
            except Exception as exc:  # keep closing; tell the user what did not stop cleanly
                show_error(f"S4MI: while closing: {exc}")
        self.autosaver.flush(wait=True)

    def watch_window(self, window: QObject) -> None:
        """Shut down when this top-level window closes (each widget calls it when first shown)."""
        if id(window) not in self._watched:
            self._watched.add(id(window))
            window.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt API)
        if event.type() == QEvent.Type.Close:
            self.shutdown()
        return False


def report(action: Callable[[], Any], what: str) -> Any:
    """Run a GUI action; an S4MIError becomes a notification instead of a traceback."""
    try:
        return action()
    except S4MIError as exc:
        show_error(f"{what}: {exc}")
    except OSError as exc:
        show_error(f"{what}: {exc}")
    return None


def notify(text: str) -> None:
    show_info(text)
