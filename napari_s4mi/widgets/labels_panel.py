"""The Project widget's class labels: the class list and mode, the slide's label(s) by button or key 1-9,
"N of M labeled", and import from a CSV; every change is saved to the project at once (atomically)."""

from __future__ import annotations

from typing import Any

from napari.utils.notifications import show_info
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..core.errors import ProjectError
from .session import Session, report

MODES = {"single label": "single", "multi-label": "multi"}
KEYS = tuple(str(i) for i in range(1, 10))


class LabelsPanel(QWidget):
    """Class labels of the slide on show, and the project's class list."""

    def __init__(self, session: Session):
        super().__init__()
        self.session = session
        self.classes_edit = QLineEdit()
        self.classes_edit.setPlaceholderText("class names, comma-separated (e.g. nevus, melanoma)")
        self.mode = QComboBox()
        self.mode.addItems(list(MODES))
        self.apply_button = QPushButton("Set classes")
        self.import_button = QPushButton("Import labels CSV…")
        self.clear_button = QPushButton("No label")
        self.count_label = QLabel("")
        self.buttons: list[QPushButton] = []
        self._grid = QGridLayout()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        row.addWidget(self.classes_edit, stretch=1)
        row.addWidget(self.mode)
        row.addWidget(self.apply_button)
        layout.addLayout(row)
        layout.addLayout(self._grid)
        row = QHBoxLayout()
        row.addWidget(self.clear_button)
        row.addWidget(self.import_button)
        layout.addLayout(row)
        layout.addWidget(self.count_label)
        self.apply_button.clicked.connect(lambda: report(self.apply_classes, "cannot set the classes"))
        self.import_button.clicked.connect(self._choose_csv)
        self.clear_button.clicked.connect(lambda: report(self.clear_label, "cannot clear the label"))
        session.project_changed.connect(self.refresh)
        session.slide_changed.connect(self._on_slide)
        session.statuses_changed.connect(self.refresh)
        self._bind_keys(session.viewer)
        self.refresh()

    # --------------------------------------------------------------------------------------------- actions

    def apply_classes(self) -> None:
        """Set the project's class list and mode from the fields."""
        project = self.session.require_project()
        names = [name.strip() for name in self.classes_edit.text().split(",") if name.strip()]
        if not names:
            raise ProjectError("give at least one class name, e.g. 'nevus, melanoma'")
        project.set_label_classes(names, mode=MODES[self.mode.currentText()])
        self.session.statuses_changed.emit()

    def import_csv(self, path: str) -> None:
        summary = self.session.require_project().import_labels_csv(path)
        show_info(f"S4MI: {summary}")
        self.session.statuses_changed.emit()

    def _choose_csv(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Class labels CSV", "", "CSV (*.csv);;All files (*)")
        if path:
            report(lambda: self.import_csv(path), "cannot import the labels")

    def toggle(self, index: int) -> None:
        """Class ``index`` for the slide on show: chosen (single label), or switched on/off (multi-label)."""
        project, slide_id = self.session.require_project(), self.session.slide_id
        classes = project.label_classes
        if slide_id is None:
            raise ProjectError("no slide on show; pick one in the slide list")
        if not 0 <= index < len(classes):
            raise ProjectError(f"there is no class {index + 1}: the project has {len(classes)} (set them above)")
        name = classes[index]
        current = project.labels_of(slide_id) or []
        if project.label_mode == "multi":
            labels = [c for c in current if c != name] if name in current else [*current, name]
        else:
            labels = [name]
        project.set_labels(slide_id, labels)
        self.session.statuses_changed.emit()

    def clear_label(self) -> None:
        project, slide_id = self.session.require_project(), self.session.slide_id
        if slide_id is not None:
            project.clear_labels(slide_id)
            self.session.statuses_changed.emit()

    def _bind_keys(self, viewer: Any) -> None:
        for number, key in enumerate(KEYS):
            viewer.bind_key(key, lambda _v, i=number: report(lambda: self.toggle(i), "cannot label"), overwrite=True)

    def _on_slide(self, _slide_id: str) -> None:
        """The mask layer has napari's own number keys (paint modes): on S4MI's mask layer they label instead,
        so that 1-9 work whichever layer is selected."""
        labels = self.session.layers.get("labels")
        if labels is not None:
            for number, key in enumerate(KEYS):
                action = lambda _layer, i=number: report(lambda: self.toggle(i), "cannot label")  # noqa: E731
                labels.bind_key(key, action, overwrite=True)
        self.refresh()

    # --------------------------------------------------------------------------------------------- view

    def refresh(self) -> None:
        project, slide_id = self.session.project, self.session.slide_id
        classes = list(project.label_classes) if project is not None else []
        if project is not None and not self.classes_edit.hasFocus():
            self.classes_edit.setText(", ".join(classes))
            mode = next(k for k, v in MODES.items() if v == (project.label_mode or "single"))
            self.mode.setCurrentText(mode)
        if [b.property("class_name") for b in self.buttons] != classes:
            self._rebuild_buttons(classes)
        chosen = (project.labels_of(slide_id) or []) if project is not None and slide_id in project.ids else []
        for button in self.buttons:
            button.setChecked(button.property("class_name") in chosen)
        if project is None:
            self.count_label.setText("")
        else:
            self.count_label.setText(f"{len(project.labeled_ids())} of {len(project.ids)} labeled")

    def _rebuild_buttons(self, classes: list[str]) -> None:
        for button in self.buttons:
            self._grid.removeWidget(button)
            button.deleteLater()
        self.buttons = []
        for index, name in enumerate(classes):
            button = QPushButton(f"{index + 1} {name}" if index < len(KEYS) else name)
            button.setCheckable(True)
            button.setProperty("class_name", name)
            button.clicked.connect(lambda _c, i=index: report(lambda: self.toggle(i), "cannot label"))
            self._grid.addWidget(button, index // 3, index % 3)
            self.buttons.append(button)
