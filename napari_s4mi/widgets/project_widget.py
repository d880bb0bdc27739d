"""Project widget: open a slide folder or project, list the slides with their status, navigate, mark annotated."""

from __future__ import annotations

from typing import Any

from qtpy.QtCore import Qt
from qtpy.QtGui import QShowEvent
from qtpy.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from .labels_panel import LabelsPanel
from .session import report, session_for

SHORTCUTS = {"next": "PageDown", "previous": "PageUp", "annotated": "Shift-A"}


class ProjectWidget(QWidget):
    """Slides of the open project: status, "N of M annotated", suggested next, keyboard navigation."""

    def __init__(self, napari_viewer: Any):
        super().__init__()
        self.viewer = napari_viewer
        self.session = session_for(napari_viewer)
        self.open_button = QPushButton("Open folder…")
        self.open_button.setToolTip("A folder of slides (a project is created in it, or next to it) or a project")
        self.path_label = QLabel("no project open")
        self.path_label.setWordWrap(True)
        self.count_label = QLabel("")
        self.unreadable_label = QLabel("")  # "N unreadable files": in the folder, but not slides (tooltip: why)
        self.unreadable_label.setStyleSheet("color: gray")
        self.unreadable_label.setVisible(False)
        self.slide_list = QListWidget()
        self.previous_button = QPushButton(f"◀ Previous ({SHORTCUTS['previous']})")
        self.next_button = QPushButton(f"Next ▶ ({SHORTCUTS['next']})")
        self.annotated_button = QPushButton(f"Mark annotated ({SHORTCUTS['annotated']})")
        self.annotated_button.setCheckable(True)
        self.suggest_button = QPushButton("Go to suggested slide")
        self.labels_panel = LabelsPanel(self.session)  # class labels: buttons, keys 1-9, CSV import
        self._build_layout()
        self.open_button.clicked.connect(self._choose_folder)
        self.slide_list.currentItemChanged.connect(self._on_item_changed)
        self.previous_button.clicked.connect(lambda: report(lambda: self.session.step_slide(-1), "previous slide"))
        self.next_button.clicked.connect(lambda: report(lambda: self.session.step_slide(+1), "next slide"))
        self.annotated_button.clicked.connect(self._toggle_annotated)
        self.suggest_button.clicked.connect(self._go_suggested)
        self.session.project_changed.connect(self.refresh)
        self.session.statuses_changed.connect(self.refresh)
        self.session.slide_changed.connect(self._select_current)
        self._bind_keys()
        self.refresh()

    def _build_layout(self) -> None:
        layout = QVBoxLayout(self)
        layout.addWidget(self.open_button)
        layout.addWidget(self.path_label)
        layout.addWidget(self.count_label)
        layout.addWidget(self.unreadable_label)
        layout.addWidget(self.slide_list, stretch=1)
        navigation = QHBoxLayout()
        navigation.addWidget(self.previous_button)
        navigation.addWidget(self.next_button)
        layout.addLayout(navigation)
        layout.addWidget(self.annotated_button)
        layout.addWidget(self.suggest_button)
        layout.addWidget(self.labels_panel)

    def _bind_keys(self) -> None:
        actions = {
            "next": lambda _v: report(lambda: self.session.step_slide(+1), "next slide"),
            "previous": lambda _v: report(lambda: self.session.step_slide(-1), "previous slide"),
            "annotated": lambda _v: self._toggle_annotated(),
        }
        for name, action in actions.items():
            self.viewer.bind_key(SHORTCUTS[name], action, overwrite=True)

    # --------------------------------------------------------------------------------------------- actions

    def open_folder(self, path: str) -> None:
        """Open the project a folder is or holds, creating one for a folder of slides."""
        report(lambda: self.session.open_path(path), f"cannot open {path}")

    def _choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Slide folder or S4MI project")
        if path:
            self.open_folder(path)

    def _on_item_changed(self, item: QListWidgetItem | None, _previous: Any = None) -> None:
        if item is None:
            return
        slide_id = item.data(Qt.ItemDataRole.UserRole)
        if slide_id != self.session.slide_id or "labels" not in self.session.layers:
            report(lambda: self.session.show_slide(slide_id), f"cannot show {slide_id}")

    def _toggle_annotated(self) -> None:
        project, slide_id = self.session.project, self.session.slide_id
        if project is None or slide_id is None:
            self.annotated_button.setChecked(False)
            return
        flag = not project.record(slide_id).annotated
        report(lambda: self.session.mark_annotated(flag), "mark annotated")
        self.refresh()

    def _go_suggested(self) -> None:
        suggested = self.session.suggested()
        if suggested is not None:
            report(lambda: self.session.show_slide(suggested), "suggested slide")

    # --------------------------------------------------------------------------------------------- view

    def refresh(self) -> None:
        """Redraw the list and counts from the project."""
        project = self.session.project
        self.slide_list.blockSignals(True)
        self.slide_list.clear()
        if project is None:
            self.path_label.setText("no project open: open a folder of slides")
            self.count_label.setText("")
        else:
            self.path_label.setText(f"project {project.root}\nslides {project.slides_dir}")
            annotated = len(project.annotated_ids())
            suggested = self.session.suggested()
            self.count_label.setText(
                f"{annotated} of {len(project.ids)} annotated · suggested next: {suggested or 'none (all done)'}"
            )
            for record in project.slides:
                item = QListWidgetItem(self._status_text(record.id, record.annotated))
                item.setData(Qt.ItemDataRole.UserRole, record.id)
                self.slide_list.addItem(item)
        self._show_unreadable({} if project is None else project.unreadable)
        self.slide_list.blockSignals(False)
        self._select_current()

    def _show_unreadable(self, unreadable: dict[str, str]) -> None:
        """The line "N unreadable files (not slides)", with each file and its reason in the tooltip."""
        count = len(unreadable)
        self.unreadable_label.setVisible(count > 0)
        self.unreadable_label.setText(f"{count} unreadable file{'' if count == 1 else 's'} (not slides)")
        self.unreadable_label.setToolTip("\n".join(f"{name}: {reason}" for name, reason in unreadable.items()))

    def _status_text(self, slide_id: str, annotated: bool) -> str:
        project = self.session.project
        marks = ["✓ annotated" if annotated else "· not annotated"]
        if project is not None and project.has_prediction(slide_id):
            marks.append("● predicted")
        labels = project.labels_of(slide_id) if project is not None else None
        if labels is not None:
            marks.append(f"class: {', '.join(labels) or 'none'}")
        return f"{slide_id}   {'  '.join(marks)}"

    def _select_current(self, *_: object) -> None:
        project, slide_id = self.session.project, self.session.slide_id
        if project is None or slide_id not in project.ids:
            self.annotated_button.setChecked(False)
            return
        self.slide_list.blockSignals(True)
        self.slide_list.setCurrentRow(project.ids.index(slide_id))
        self.slide_list.blockSignals(False)
        self.annotated_button.setChecked(project.record(slide_id).annotated)

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 (Qt API)
        """Docked and shown: watch the main window so that closing napari stops workers and saves masks."""
        self.session.watch_window(self.window())
        super().showEvent(event)
