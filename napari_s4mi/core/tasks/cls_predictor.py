"""Classification with a trained run: class probabilities per slide, and saliency maps at the slide's resolution.

A slide is tiled as in training (480 px tiles past 960 px, else resized whole); its score is the mean of its
tiles' probabilities (softmax, or per-class sigmoids in multi-label mode). Saliency: the gradient of the class
score with respect to the input pixels (any network) or Grad-CAM (CNNs, on the last residual stage), stitched
from the tiles and scaled to [0, 1] once per slide.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import atomic_write_bytes, atomic_write_text
from ..batch import BatchResult, SlideBatch
from ..cls_config import FinetuneConfig
from ..disk import writing
from ..errors import InputError
from ..inference import SlideLike, network_inputs
from ..prediction_names import output_names, refuse_overwriting_inputs
from ..preprocess import tile_grid
from ..saliency import grad_cam, gradient_saliency, slide_saliency
from .classification import tiling_spec

SALIENCY_KINDS = ("gradient", "gradcam")
BATCH = 16


@dataclass(frozen=True)
class SlideScores:
    """A slide's class probabilities (K,) and the predicted class (or classes, multi-label)."""

    probs: np.ndarray
    predicted: list[str]
    n_tiles: int


class ClsPredictor:
    """A fine-tuned classification run ready to predict; ``which``: a network, mean, or auto (best on val)."""

    def __init__(self, run: Any, which: str = "auto"):
        self.run = run
        self.config: FinetuneConfig = run.config
        self.classes: list[str] = list(run.record["classes"])
        self.multi_label = bool(run.record.get("multi_label", False))
        self.red_norm = bool(run.record.get("red_norm_applied", False))
        self.device, self.step = run.device, run.step
        self.method = run.build_method()
        outputs = self.config.outputs
        self.which = run.state.get("predict_with", self.method.default_output) if which == "auto" else which
        if self.which not in outputs:
            raise InputError(f"{run.path}: cannot predict with '{which}'; this run has {', '.join(outputs)}")
        self.spec = tiling_spec(self.config)

    def tile_probabilities(self, slide: SlideLike) -> np.ndarray:
        """(tiles, K) probabilities of the chosen output."""
        tiles = tile_grid(*(int(v) for v in slide.shape[:2]), self.spec)
        rows = []
        for start in range(0, len(tiles), BATCH):
            x = network_inputs(slide, tiles[start : start + BATCH], self.spec.input_size, self.red_norm)
            rows.append(self.method.predict(x.to(self.device))[self.which].cpu().numpy())
        return np.concatenate(rows)

    def predict(self, slide: SlideLike) -> SlideScores:
        """The slide's probabilities: the mean over its tiles."""
        per_tile = self.tile_probabilities(slide)
        probs = per_tile.mean(axis=0)
        if self.multi_label:
            predicted = [c for c, p in zip(self.classes, probs, strict=True) if p >= self.config.threshold]
        else:
            predicted = [self.classes[int(np.argmax(probs))]]
        return SlideScores(probs, predicted, len(per_tile))

    def class_index(self, name: str | None, scores: SlideScores | None = None) -> int:
        """The index of class ``name`` (None: the predicted class)."""
        if name is None:
            if scores is None or not scores.predicted:
                return int(np.argmax(scores.probs)) if scores is not None else 0
            return self.classes.index(scores.predicted[0])
        if name not in self.classes:
            raise InputError(f"class '{name}' unknown: this run has {', '.join(self.classes)}")
        return self.classes.index(name)

    def saliency(self, slide: SlideLike, class_index: int, network: str | None = None, kind: str = "gradient"):
        """A float32 (H, W) map in [0, 1] of where ``network`` (default: the CNN for Grad-CAM, else the chosen
        network, the CNN for the mean) looked for class ``class_index``."""
        if kind not in SALIENCY_KINDS:
            raise InputError(f"saliency '{kind}' unknown: use {' or '.join(SALIENCY_KINDS)}")
        names = list(self.method.networks)
        name = network or (self.which if self.which in names else names[0])
        if kind == "gradcam":
            name = network or next((n for n in names if hasattr(self.method.networks[n].backbone, "layer4")), name)
        model = self.method.networks[name]
        if kind == "gradcam" and not hasattr(model.backbone, "layer4"):
            raise InputError(f"Grad-CAM needs a CNN; '{name}' is a transformer: use gradient saliency")

        def maps(x: torch.Tensor) -> torch.Tensor:
            x = x.to(self.device)
            if kind == "gradcam":
                return grad_cam(model, x, class_index, model.backbone.layer4, normalise=False)
            return gradient_saliency(model, x, class_index, normalise=False)

        return slide_saliency(slide, maps, self.spec, self.red_norm, batch_size=8)

    def predict_folder(
        self, paths: list[Path], out: Path, saliency: str | None = None, kind: str = "gradient", strict: bool = False
    ) -> BatchResult:
        """Write ``predictions.csv`` (image_id, a probability per class, pred) and, when ``saliency`` is given
        ('' for each slide's predicted class), ``<name>_saliency.tif`` per slide; ``<name>`` (and image_id) is the
        stem, or the file name where stems collide (``prediction_names``). A slide that cannot be read is reported
        and skipped (``strict``: the error stops the batch); the result counts the rows written."""
        import tifffile
        from tqdm import tqdm

        from ..io import open_slide

        names = output_names(paths, ["_saliency.tif"] if saliency is not None else [""])
        if saliency is not None:
            refuse_overwriting_inputs(paths, (out / f"{n}_saliency.tif" for n in names.values()), out)
            if saliency:
                self.class_index(saliency)  # an unknown class stops here, not once per slide
        batch = SlideBatch(len(paths), strict)
        rows = []
        for path in tqdm(paths, unit="slide"):

            def predict(path: Path = path) -> tuple[SlideScores, bytes | None]:
                with open_slide(path) as slide:
                    scores = self.predict(slide)
                    if saliency is None:
                        return scores, None
                    buffer = io.BytesIO()
                    index = self.class_index(saliency or None, scores)
                    tifffile.imwrite(buffer, self.saliency(slide, index, kind=kind), compression="zlib")
                    return scores, buffer.getvalue()

            done = batch.attempt(path, predict)
            if done is None:
                continue
            scores, saliency_tif = done
            if saliency_tif is not None:
                target = out / f"{names[path]}_saliency.tif"
                with writing("writing a saliency map", target):
                    atomic_write_bytes(target, saliency_tif)
            rows.append([names[path], *(f"{p:.6f}" for p in scores.probs), ";".join(scores.predicted)])
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(["image_id", *self.classes, "pred"])
        writer.writerows(rows)
        with writing("writing predictions.csv", out / "predictions.csv"):
            atomic_write_text(out / "predictions.csv", text.getvalue())
        batch.result.written = len(rows)
        return batch.result
