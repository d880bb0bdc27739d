"""Segmentation prediction with a trained run: its networks rebuilt from config.json, whole slides stitched."""

from __future__ import annotations

import dataclasses
import shutil
import sys
from pathlib import Path
from typing import Any

import torch

from ..batch import BatchResult, SlideBatch
from ..errors import InputError
from ..inference import SlidePrediction, predict_slide
from ..io import Slide
from ..prediction_names import output_names, refuse_overwriting_inputs
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

    def tiling_note(self, shape: tuple[int, ...], large_slides: str = "tile") -> str | None:
        """A line for a slide that tiling shows less of than training showed of its slides (a slide over the tile
        threshold, tiled, from a run that trained on whole slides under it); None otherwise."""
        trained = self.run.record.get("largest_training_side")
        threshold = self.config.tile_threshold
        if large_slides != "tile" or max(shape[:2]) <= threshold or trained is None or trained > threshold:
            return None
        return (
            f"a {shape[0]}×{shape[1]} slide is over the {threshold}-px tile threshold, but this run trained on whole "
            f"slides of at most {trained} px: cut into {self.config.tile_size}-px tiles, it is seen at a closer field "
            "of view than in training; where it shows the same kind of scene at a higher resolution (photographs, "
            "dermoscopy), resize large slides whole (--large-slides whole)"
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

    def predict(
        self, slide: Slide, out_dir: Path | None = None, batch_size: int = 8, large_slides: str = "tile"
    ) -> SlidePrediction:
        """Predict a whole slide tile by tile, stitched at full resolution; ``large_slides``: ``tile`` or
        ``whole`` (``tasks.segmentation.tiling_spec``)."""
        return predict_slide(
            slide,
            self.predict_tiles,
            tiling_spec(self.config, large_slides),
            num_classes=len(self.classes),
            red_norm=self.red_norm,
            batch_size=batch_size,
            out_dir=out_dir,
            with_disagreement=self.has_disagreement,
        )

    def predict_folder(
        self,
        paths: list[Path],
        out: Path,
        disagreement: bool = False,
        strict: bool = False,
        large_slides: str = "tile",
    ) -> BatchResult:
        """Write ``<name>.png`` masks (``<name>.tif`` past 8192² px), and the CNN-Swin disagreement when asked;
        ``<name>`` is the slide's stem, or its file name where stems collide (``prediction_names``). A slide that
        cannot be read is reported and skipped (``strict``: the error stops the batch); what was written is
        counted in the result. ``large_slides``: see ``predict``."""
        tiling_spec(self.config, large_slides)  # a bad choice is refused before anything is written
        from tqdm import tqdm

        from ..io import open_slide
        from ..writers import write_prediction

        suffixes = [".png", ".tif", *(["_disagreement.tif"] if disagreement else [])]
        names = output_names(paths, suffixes)
        refuse_overwriting_inputs(paths, (out / f"{n}{s}" for n in names.values() for s in suffixes), out)
        batch = SlideBatch(len(paths), strict)
        noted = False
        for path in tqdm(paths, unit="slide"):
            work = out / f".{names[path]}.work"

            def predict(path: Path = path, work: Path = work) -> SlidePrediction:
                nonlocal noted
                with open_slide(path) as slide:
                    note = None if noted else self.tiling_note(slide.shape, large_slides)
                    if note is not None:
                        tqdm.write(f"s4mi: note: {path.name}: {note}", file=sys.stderr)
                        noted = True
                    return self.predict(slide, out_dir=work, large_slides=large_slides)

            try:
                prediction = batch.attempt(path, predict)
                if prediction is not None:
                    write_prediction(out, names[path], prediction, len(self.classes), disagreement)
                    batch.result.written += 1
            finally:
                prediction = None
                shutil.rmtree(work, ignore_errors=True)
        return batch.result
