"""The Train widget's settings form: fields <-> a method's config, remembered between sessions in a JSON file.

The methods and their settings come from the registry: a field shows when the chosen method's config has it (the
Swin size for a config with a "swin" network, the unlabeled batch for a method with an unlabeled stream, k and the
clustering interval for PiCIE). The encoders of a U-Net / Swin-UNet can start from a self-supervised pretraining on
the project's own slides (``--init ssl``): a new one, or a finished one of the project."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from qtpy.QtGui import QDoubleValidator
from qtpy.QtWidgets import QComboBox, QDoubleSpinBox, QFormLayout, QLineEdit, QSpinBox, QWidget

from ..core.atomic import atomic_write_text
from ..core.config import DEVICES, PRECISIONS, PRESETS
from ..core.registry import make_config, method_names
from ..core.seg_config import SegConfig
from ..core.seg_pretrain_config import SegPretrainConfig, can_pretrain

CNN_ENCODERS = ("resnet18", "resnet34", "resnet50")
SWIN_SIZES = {"48": (2, 4, 8, 16), "96": (3, 6, 12, 24)}  # embed dim → heads per stage
SETTINGS_ENV = "S4MI_SETTINGS_DIR"
TASK = "segmentation"
WEIGHTS_INIT = "ImageNet weights (random where none)"
SSL_ANEW = "self-supervised: pretrain anew"


def settings_path(name: str = "train.json") -> Path:
    """``$S4MI_SETTINGS_DIR/<name>``, else ``~/.config/napari-s4mi/<name>``."""
    base = os.environ.get(SETTINGS_ENV) or Path.home() / ".config" / "napari-s4mi"
    return Path(base) / name


def _spin(low: int, high: int, step: int = 1) -> QSpinBox:
    box = QSpinBox()
    box.setRange(low, high)
    box.setSingleStep(step)
    return box


def _combo(items: tuple[str, ...]) -> QComboBox:
    box = QComboBox()
    box.addItems(list(items))
    return box


class TrainForm(QWidget):
    """Every training choice a user makes; presets fill the fields, the fields build the config."""

    def __init__(self) -> None:
        super().__init__()
        self.method = _combo(method_names(TASK))
        self.preset = _combo(PRESETS)
        self.cnn = _combo(CNN_ENCODERS)
        self.swin = _combo(tuple(SWIN_SIZES))
        self.input_size = _spin(32, 1024, 32)
        self.iterations = _spin(1, 1_000_000, 100)
        self.labeled_batch = _spin(1, 256)
        self.unlabeled_batch = _spin(0, 256)
        self.lr = QLineEdit()
        self.lr.setValidator(QDoubleValidator(1e-8, 1.0, 10))
        self.label_fraction = QDoubleSpinBox()
        self.label_fraction.setRange(0.0, 1.0)  # 0: a method that uses no labels (PiCIE)
        self.label_fraction.setSingleStep(0.05)
        self.label_fraction.setDecimals(2)
        self.clusters = _spin(2, 64)
        self.cluster_every = _spin(0, 1_000_000, 10)
        self.cluster_every.setSpecialValueText("once per epoch")
        self.encoders = _combo((WEIGHTS_INIT, SSL_ANEW))
        self.pretrain_iterations = _spin(1, 1_000_000, 100)
        self.device = _combo(DEVICES)
        self.precision = _combo(PRECISIONS)
        layout = self._rows = QFormLayout(self)
        for label, field in (
            ("method", self.method),
            ("preset", self.preset),
            ("CNN encoder", self.cnn),
            ("Swin embed dim", self.swin),
            ("input size (px)", self.input_size),
            ("iterations", self.iterations),
            ("labeled per batch", self.labeled_batch),
            ("unlabeled per batch", self.unlabeled_batch),
            ("learning rate", self.lr),
            ("label fraction", self.label_fraction),
            ("clusters (k)", self.clusters),
            ("steps between clusterings", self.cluster_every),
            ("encoders start from", self.encoders),
            ("pretraining steps", self.pretrain_iterations),
            ("device", self.device),
            ("precision", self.precision),
        ):
            layout.addRow(label, field)
        self.preset.currentTextChanged.connect(lambda _t: self.apply_preset())
        self.method.currentTextChanged.connect(lambda _t: self.apply_preset())
        self.encoders.currentIndexChanged.connect(lambda _i: self._update_pretraining())
        self.apply_preset()

    def apply_preset(self) -> None:
        """Fill the fields from the chosen preset and method."""
        self.fill(make_config(TASK, self.method.currentText(), self.preset.currentText()))

    def fill(self, config: SegConfig) -> None:
        for box, value in ((self.method, config.method), (self.preset, config.preset)):
            box.blockSignals(True)
            box.setCurrentText(value)
            box.blockSignals(False)
        self.cnn.setCurrentText(config.networks.get("cnn", {}).get("encoder", "resnet18"))
        self.swin.setCurrentText(str(config.networks.get("swin", {}).get("embed_dim", 48)))
        self.input_size.setValue(config.input_size)
        self.iterations.setValue(config.iterations)
        self.labeled_batch.setValue(config.labeled_batch)
        self.unlabeled_batch.setValue(config.unlabeled_batch)
        self.lr.setText(f"{config.lr:g}")
        self.label_fraction.setValue(config.label_fraction)
        self.device.setCurrentText(config.device)
        self.precision.setCurrentText(config.precision)
        self.cnn.setEnabled("cnn" in config.networks)
        self.swin.setEnabled("swin" in config.networks)
        self.unlabeled_batch.setEnabled(config.uses_unlabeled)
        self.label_fraction.setEnabled(config.uses_labels)
        picie = hasattr(config, "clusters")
        if picie:
            self.clusters.setValue(config.clusters)
            self.cluster_every.setValue(config.cluster_every)
        self.clusters.setEnabled(picie)
        self.cluster_every.setEnabled(picie)
        self.encoders.setEnabled(can_pretrain(config.networks))
        self.pretrain_iterations.setValue(SegPretrainConfig.for_preset(config.preset).iterations)
        self._update_pretraining()
        batch_label = self._rows.labelForField(self.labeled_batch)
        batch_label.setText("labeled per batch" if config.uses_labels else "images per batch")

    def values(self) -> dict[str, Any]:
        """The fields as plain values (what is remembered)."""
        return {
            "method": self.method.currentText(),
            "preset": self.preset.currentText(),
            "cnn": self.cnn.currentText(),
            "swin": self.swin.currentText(),
            "input_size": self.input_size.value(),
            "iterations": self.iterations.value(),
            "labeled_batch": self.labeled_batch.value(),
            "unlabeled_batch": self.unlabeled_batch.value(),
            "lr": self.lr.text(),
            "label_fraction": self.label_fraction.value(),
            "clusters": self.clusters.value(),
            "cluster_every": self.cluster_every.value(),
            "encoders": self.encoders.currentText(),
            "pretrain_iterations": self.pretrain_iterations.value(),
            "device": self.device.currentText(),
            "precision": self.precision.currentText(),
        }

    def config(self) -> SegConfig:
        """The config the fields describe; TrainingError naming a bad field."""
        v = self.values()
        config = make_config(TASK, v["method"], v["preset"])
        try:
            lr = float(v["lr"])
        except ValueError:
            lr = -1.0  # rejected by validate() with a clear message
        if "cnn" in config.networks:
            config.networks["cnn"]["encoder"] = v["cnn"]
        if "swin" in config.networks:
            config.networks["swin"].update(embed_dim=int(v["swin"]), num_heads=list(SWIN_SIZES[v["swin"]]))
        if hasattr(config, "clusters"):
            config.override(clusters=v["clusters"], cluster_every=v["cluster_every"])
        return config.override(
            input_size=v["input_size"],
            iterations=v["iterations"],
            labeled_batch=v["labeled_batch"],
            unlabeled_batch=v["unlabeled_batch"] if config.uses_unlabeled else 0,
            lr=lr,
            label_fraction=v["label_fraction"] if config.uses_labels else None,
            device=v["device"],
            precision=v["precision"],
        ).validate()

    def ssl_init(self) -> tuple[Path | None, dict[str, Any]] | None:
        """Where the encoders start: None for their weights (ImageNet or random); else (a finished pretraining to
        reuse, or None for a new one; the new one's settings)."""
        if not self.encoders.isEnabled() or self.encoders.currentText() == WEIGHTS_INIT:
            return None
        reuse = self.encoders.currentData()
        if reuse:
            return Path(reuse), {}
        return None, {"iterations": self.pretrain_iterations.value()}

    def set_pretrainings(self, runs: list[Path]) -> None:
        """Offer these finished segmentation pretrainings to start from (the choice is kept when still offered)."""
        chosen = self.encoders.currentText()
        self.encoders.blockSignals(True)
        self.encoders.clear()
        self.encoders.addItems([WEIGHTS_INIT, SSL_ANEW])
        for run in runs:
            self.encoders.addItem(f"self-supervised: {run.name}", str(run))
        self.encoders.setCurrentIndex(max(self.encoders.findText(chosen), 0))
        self.encoders.blockSignals(False)
        self._update_pretraining()

    def _update_pretraining(self) -> None:
        self.pretrain_iterations.setEnabled(self.encoders.isEnabled() and self.encoders.currentText() == SSL_ANEW)

    # --------------------------------------------------------------------------------------------- memory

    def save_settings(self) -> None:
        path = settings_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(self.values(), indent=2))

    def load_settings(self) -> None:
        """Restore the last session's fields; a missing or damaged file leaves the preset values."""
        try:
            saved = json.loads(settings_path().read_text())
        except (OSError, ValueError):
            return
        if not isinstance(saved, dict):
            return
        self.method.setCurrentText(str(saved.get("method", self.method.currentText())))
        self.preset.setCurrentText(str(saved.get("preset", self.preset.currentText())))
        setters = {
            "cnn": lambda x: self.cnn.setCurrentText(str(x)),
            "swin": lambda x: self.swin.setCurrentText(str(x)),
            "input_size": lambda x: self.input_size.setValue(int(x)),
            "iterations": lambda x: self.iterations.setValue(int(x)),
            "labeled_batch": lambda x: self.labeled_batch.setValue(int(x)),
            "unlabeled_batch": lambda x: self.unlabeled_batch.setValue(int(x)),
            "lr": lambda x: self.lr.setText(str(x)),
            "label_fraction": lambda x: self.label_fraction.setValue(float(x)),
            "clusters": lambda x: self.clusters.setValue(int(x)),
            "cluster_every": lambda x: self.cluster_every.setValue(int(x)),
            "encoders": lambda x: self.encoders.setCurrentText(str(x)),
            "pretrain_iterations": lambda x: self.pretrain_iterations.setValue(int(x)),
            "device": lambda x: self.device.setCurrentText(str(x)),
            "precision": lambda x: self.precision.setCurrentText(str(x)),
        }
        for key, setter in setters.items():
            if key in saved:
                try:
                    setter(saved[key])
                except (TypeError, ValueError):
                    continue
