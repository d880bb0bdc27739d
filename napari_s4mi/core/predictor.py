"""Prediction with a trained run: rebuild its networks from config.json, load weights, predict whole slides."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from . import checkpoint as ckpt
from .config import PREDICT_WITH
from .device import resolve_device, resolve_precision
from .engine import BEST, LAST, load_run_config, tiling_spec
from .errors import InputError
from .inference import SlidePrediction, predict_slide
from .io import Slide
from .methods import make_method
from .runs import read_run_config


class Predictor:
    """A trained run ready to predict; `which` is cnn, swin, mean, or auto (the run's best on validation)."""

    def __init__(
        self,
        run_dir: Path,
        which: str = "auto",
        device: str = "auto",
        precision: str = "fp32",
        checkpoint: str = "auto",
    ):
        run_dir = Path(run_dir)
        record = read_run_config(run_dir)
        self.config = load_run_config(run_dir)
        self.classes: list[str] = record.get("classes", ["background", "foreground"])
        self.red_norm: bool = bool(record.get("red_norm_applied", False))
        folder = run_dir / (checkpoint if checkpoint != "auto" else BEST if (run_dir / BEST).exists() else LAST)
        state = ckpt.read_state(folder)
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        # Activation checkpointing only acts in training; its wrappers make reference cycles that would keep the
        # networks' GPU memory after the Predictor is dropped (until a garbage collection), so leave it off.
        inference_config = dataclasses.replace(self.config, memory_saving=False)
        self.method = make_method(inference_config, len(self.classes), self.device, self.precision, weights="none")
        ckpt.load_networks(folder, self.method.networks)
        self.method.use_inference_layout()
        self.which = state.get("predict_with", "cnn") if which == "auto" else which
        if self.which not in PREDICT_WITH or self.which not in self._available():
            raise InputError(f"{run_dir}: cannot predict with '{which}'; this run has {', '.join(self._available())}")
        self.checkpoint = folder
        self.step = state.get("step", 0)

    def _available(self) -> list[str]:
        names = list(self.method.networks)
        return names + ["mean"] if len(names) == 2 else names

    @property
    def has_disagreement(self) -> bool:
        return len(self.method.networks) == 2

    def predict_tiles(self, batch: torch.Tensor):
        """Probabilities of the chosen network(s) for a batch of normalised tiles, plus disagreement when two."""
        probs = self.method.probabilities(batch.to(self.device))
        chosen = probs[self.which].cpu()
        if not self.has_disagreement:
            return chosen
        disagreement = 0.5 * (probs["cnn"] - probs["swin"]).abs().sum(dim=1)
        return chosen, disagreement.cpu()

    def predict(self, slide: Slide, out_dir: Path | None = None, batch_size: int = 8) -> SlidePrediction:
        """Predict a whole slide tile by tile, stitched at full resolution."""
        return predict_slide(
            slide,
            self.predict_tiles,
            tiling_spec(self.config),
            num_classes=len(self.classes),
            red_norm=self.red_norm,
            batch_size=batch_size,
            out_dir=out_dir,
            with_disagreement=self.has_disagreement,
        )
