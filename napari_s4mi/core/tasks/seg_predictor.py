"""Segmentation prediction with a trained run: its networks rebuilt from config.json, whole slides stitched."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError
from ..inference import SlidePrediction, predict_slide
from ..io import Slide
from ..seg_config import SegConfig
from .segmentation import tiling_spec


class SegPredictor:
    """A trained segmentation run ready to predict; ``which`` is a network, mean, or auto (best on validation)."""

    def __init__(self, run: Any, which: str = "auto"):
        self.run = run
        self.config: SegConfig = run.config
        self.classes: list[str] = run.record.get("classes", ["background", "foreground"])
        self.red_norm: bool = bool(run.record.get("red_norm_applied", False))
        self.device, self.precision, self.checkpoint, self.step = run.device, run.precision, run.folder, run.step
        # Activation checkpointing only acts in training; its wrappers make reference cycles that would keep the
        # networks' GPU memory after the predictor is dropped (until a garbage collection), so leave it off.
        self.method = run.build_method(dataclasses.replace(self.config, memory_saving="off"))
        self.method.use_inference_layout()
        self.which = run.state.get("predict_with", self.method.default_output) if which == "auto" else which
        if self.which not in self.config.outputs:
            raise InputError(
                f"{run.path}: cannot predict with '{which}'; this run has {', '.join(self.config.outputs)}"
            )

    @property
    def has_disagreement(self) -> bool:
        return len(self.method.networks) == 2

    def predict_tiles(self, batch: torch.Tensor):
        """Probabilities of the chosen output for a batch of normalised tiles, plus disagreement for two networks."""
        probs = self.method.predict(batch.to(self.device))
        chosen = probs[self.which].cpu()
        if not self.has_disagreement:
            return chosen
        first, second = (probs[name] for name in self.method.networks)
        return chosen, (0.5 * (first - second).abs().sum(dim=1)).cpu()

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

    def predict_folder(self, paths: list[Path], out: Path, disagreement: bool = False) -> int:
        """Write ``<stem>.png`` masks (``<stem>.tif`` past 8192² px), and the CNN-Swin disagreement when asked.
        Returns the number of slides written."""
        from tqdm import tqdm

        from ..io import open_slide
        from ..writers import write_prediction

        for path in tqdm(paths, unit="slide"):
            with open_slide(path) as slide:
                prediction = self.predict(slide, out_dir=out / f".{path.stem}.work")
            write_prediction(out, path.stem, prediction, len(self.classes), disagreement)
        return len(paths)
