"""After a PiCIE run: which of its clusters prediction calls foreground (the map fitted on validation, or a pick)."""

from __future__ import annotations

from pathlib import Path

from napari.utils.notifications import show_error
from qtpy.QtWidgets import QComboBox, QFormLayout, QWidget

from ..core.cluster_map import ClusterChoice, read_cluster_choice, set_foreground_clusters
from ..core.errors import S4MIError

AUTO = "as fitted on validation"


class ClusterChoiceRow(QWidget):
    """A 'foreground cluster' choice, shown for a finished PiCIE run only; a change is saved in the run at once."""

    def __init__(self) -> None:
        super().__init__()
        self.combo = QComboBox()
        self.combo.setToolTip(
            "PiCIE's clusters are numbered by size (0 = the largest); prediction labels the chosen one foreground"
        )
        layout = QFormLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addRow("foreground cluster", self.combo)
        self.run_dir: Path | None = None
        self.combo.currentIndexChanged.connect(self._chosen)
        self.setVisible(False)

    def show_run(self, run_dir: Path | None) -> None:
        """Offer the choice for ``run_dir`` if it is a trained PiCIE run; hide otherwise."""
        choice = None
        if run_dir is not None:
            try:
                choice = read_cluster_choice(run_dir)
            except (S4MIError, OSError, ValueError):
                choice = None
        self.run_dir = run_dir if choice is not None else None
        self.setVisible(choice is not None)
        if choice is not None:
            self._fill(choice)

    def _fill(self, choice: ClusterChoice) -> None:
        self.combo.blockSignals(True)
        self.combo.clear()
        if choice.fitted is not None:
            fitted = [k for k, c in enumerate(choice.fitted) if c > 0]
            self.combo.addItem(f"{AUTO} ({', '.join(map(str, fitted)) or 'none'})", [])
        else:
            default = ", ".join(str(k) for k in range(1, choice.clusters))
            self.combo.addItem(f"default: {default} (no validation masks)", [])
        for k in range(choice.clusters):
            self.combo.addItem(f"cluster {k}" + (" (largest)" if k == 0 else ""), [k])
        picked = choice.foreground
        index = next((i for i in range(1, self.combo.count()) if self.combo.itemData(i) == picked), 0)
        self.combo.setCurrentIndex(index if picked else 0)
        self.combo.blockSignals(False)

    def _chosen(self, index: int) -> None:
        if self.run_dir is None or index < 0:
            return
        try:
            set_foreground_clusters(self.run_dir, list(self.combo.itemData(index) or []))
        except (S4MIError, OSError) as exc:
            show_error(f"S4MI: foreground cluster not saved: {exc}")
