"""The Train widget's classification form: pretraining (CASS, DINO or none) then fine-tuning, as one job.

Methods come from the registry; a finished pretraining of the project can be reused. The fields are remembered
between sessions (``cls.json`` beside the segmentation form's settings)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qtpy.QtGui import QDoubleValidator
from qtpy.QtWidgets import QComboBox, QDoubleSpinBox, QFormLayout, QLineEdit, QWidget

from ..core.atomic import atomic_write_text
from ..core.config import DEVICES, PRECISIONS, PRESETS
from ..core.registry import make_config, method_names, pretraining_methods
from .train_form import _combo, _spin, settings_path

NONE = "none (supervised from ImageNet)"
CNNS = ("resnet18", "resnet34", "resnet50")
VITS = ("vit_tiny_patch16_224", "vit_small_patch16_224", "vit_base_patch16_224")
ANEW = "pretrain anew"
SETTINGS = "cls.json"


def finished_pretrainings(runs_dir: Path) -> dict[str, list[Path]]:
    """Finished pretraining runs in a project's runs folder (top level or a pipeline's ``pretrain/``), newest first,
    by what they prepare (``classification``: CASS, DINO; ``segmentation``: cass-seg); one pass over the folder."""
    from ..core.cls_pipeline import PRETRAIN_DIR, pipeline_finished

    purposes = ("classification", "segmentation")
    prepared_by = {method: purpose for purpose in purposes for method in pretraining_methods(purpose)}
    found: dict[str, list[Path]] = {purpose: [] for purpose in purposes}
    for run in Path(runs_dir).iterdir() if Path(runs_dir).is_dir() else []:
        for candidate in (run / PRETRAIN_DIR, run):
            try:
                config = json.loads((candidate / "config.json").read_text())["config"]
            except (OSError, ValueError, KeyError):
                continue
            purpose = prepared_by.get(config.get("method")) if config.get("task") == "pretraining" else None
            if purpose is not None and pipeline_finished(candidate):
                found[purpose].append(candidate)
    return {purpose: sorted(runs, key=lambda p: p.stat().st_mtime, reverse=True) for purpose, runs in found.items()}


class ClsForm(QWidget):
    """Every classification training choice; the preset fills the fields, the fields build the pipeline."""

    def __init__(self) -> None:
        super().__init__()
        self.pretraining = _combo((*pretraining_methods(), NONE))
        self.reuse = QComboBox()
        self.reuse.addItem(ANEW)
        self.preset = _combo(PRESETS)
        self.label_fraction = QDoubleSpinBox()
        self.label_fraction.setRange(0.01, 1.0)
        self.label_fraction.setSingleStep(0.05)
        self.label_fraction.setDecimals(2)
        self.cnn = _combo(CNNS)
        self.vit = _combo(VITS)
        self.pretrain_iterations = _spin(1, 1_000_000, 100)
        self.iterations = _spin(1, 1_000_000, 100)
        self.input_size = _spin(32, 1024, 32)
        self.batch = _spin(2, 512)
        self.lr = QLineEdit()
        self.lr.setValidator(QDoubleValidator(1e-8, 1.0, 10))
        self.device = _combo(DEVICES)
        self.precision = _combo(PRECISIONS)
        layout = QFormLayout(self)
        for label, field in (
            ("pretraining", self.pretraining),
            ("reuse", self.reuse),
            ("preset", self.preset),
            ("label fraction", self.label_fraction),
            ("CNN", self.cnn),
            ("ViT", self.vit),
            ("pretraining steps", self.pretrain_iterations),
            ("fine-tuning steps", self.iterations),
            ("input size (px)", self.input_size),
            ("batch", self.batch),
            ("fine-tuning lr", self.lr),
            ("device", self.device),
            ("precision", self.precision),
        ):
            layout.addRow(label, field)
        self.preset.currentTextChanged.connect(lambda _t: self.apply_preset())
        self.pretraining.currentTextChanged.connect(lambda _t: self._update_enabled())
        self.reuse.currentTextChanged.connect(lambda _t: self._update_enabled())
        self.apply_preset()

    @property
    def method(self) -> str:
        """The pipeline method: a pretraining method, or the direct classification one."""
        text = self.pretraining.currentText()
        return method_names("classification")[0] if text == NONE else text

    def apply_preset(self) -> None:
        preset = self.preset.currentText()
        finetune = make_config("classification", method_names("classification")[0], preset)
        pretrain = make_config("pretraining", pretraining_methods()[0], preset)
        self.label_fraction.setValue(finetune.label_fraction)
        self.cnn.setCurrentText(finetune.networks["cnn"]["arch"])
        self.vit.setCurrentText(finetune.networks["vit"]["arch"])
        self.pretrain_iterations.setValue(pretrain.iterations)
        self.iterations.setValue(finetune.iterations)
        self.input_size.setValue(finetune.input_size)
        self.batch.setValue(finetune.batch)
        self.lr.setText(f"{finetune.lr:g}")
        self._update_enabled()

    def _update_enabled(self) -> None:
        pretraining = self.pretraining.currentText() != NONE
        self.reuse.setEnabled(pretraining)
        self.pretrain_iterations.setEnabled(pretraining and self.reuse.currentText() == ANEW)

    def set_pretrainings(self, runs: list[Path]) -> None:
        """Offer these finished pretraining runs for reuse (the choice is kept when still offered)."""
        chosen = self.reuse.currentText()
        self.reuse.blockSignals(True)
        self.reuse.clear()
        self.reuse.addItem(ANEW)
        for run in runs:
            self.reuse.addItem(f"{run.parent.name}/{run.name}" if run.name == "pretrain" else run.name, str(run))
        index = self.reuse.findText(chosen)
        self.reuse.setCurrentIndex(max(index, 0))
        self.reuse.blockSignals(False)
        self._update_enabled()

    def pipeline(self):
        """The ClsPipeline the fields describe; S4MIError naming a bad field."""
        from ..core.cls_pipeline import plan_pipeline

        try:
            lr = float(self.lr.text())
        except ValueError:
            lr = -1.0  # refused by validate() with a clear message
        archs = {"cnn": self.cnn.currentText(), "vit": self.vit.currentText()}
        shared = {
            "input_size": self.input_size.value(),
            "batch": self.batch.value(),
            "device": self.device.currentText(),
            "precision": self.precision.currentText(),
        }
        finetune = shared | {
            "label_fraction": self.label_fraction.value(),
            "iterations": self.iterations.value(),
            "lr": lr,
        }
        reuse = self.reuse.currentData() if self.pretraining.currentText() != NONE else None
        pretraining = None
        if self.pretraining.currentText() != NONE and reuse is None:
            names = make_config("pretraining", self.method, self.preset.currentText()).networks
            networks = {name: {"arch": archs[name], "weights": "imagenet"} for name in names}
            pretraining = shared | {"iterations": self.pretrain_iterations.value(), "networks": networks}
        else:
            finetune["networks"] = {name: {"arch": arch, "weights": "imagenet"} for name, arch in archs.items()}
        return plan_pipeline(
            self.method, self.preset.currentText(), finetune, pretraining, Path(reuse) if reuse else None
        )

    # --------------------------------------------------------------------------------------------- memory

    def values(self) -> dict[str, Any]:
        return {
            "pretraining": self.pretraining.currentText(),
            "preset": self.preset.currentText(),
            "label_fraction": self.label_fraction.value(),
            "cnn": self.cnn.currentText(),
            "vit": self.vit.currentText(),
            "pretrain_iterations": self.pretrain_iterations.value(),
            "iterations": self.iterations.value(),
            "input_size": self.input_size.value(),
            "batch": self.batch.value(),
            "lr": self.lr.text(),
            "device": self.device.currentText(),
            "precision": self.precision.currentText(),
        }

    def save_settings(self) -> None:
        path = settings_path(SETTINGS)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(self.values(), indent=2))

    def load_settings(self) -> None:
        """Restore the last session's fields; a missing or damaged file leaves the preset values."""
        try:
            saved = json.loads(settings_path(SETTINGS).read_text())
        except (OSError, ValueError):
            return
        if not isinstance(saved, dict):
            return
        for key in ("preset", "pretraining", "cnn", "vit", "device", "precision"):
            if isinstance(saved.get(key), str):
                getattr(self, key).setCurrentText(saved[key])
        for key in ("pretrain_iterations", "iterations", "input_size", "batch"):
            if isinstance(saved.get(key), int):
                getattr(self, key).setValue(saved[key])
        if isinstance(saved.get("label_fraction"), int | float):
            self.label_fraction.setValue(float(saved["label_fraction"]))
        if isinstance(saved.get("lr"), str):
            self.lr.setText(saved["lr"])
