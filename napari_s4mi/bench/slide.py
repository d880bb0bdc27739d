"""Slide part: a 1408×1876 slide predicted and stitched by the repo's Predictor and by the plain tile loop."""

from __future__ import annotations

from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np
import torch

from ..core.config import SegConfig
from .batches import bench_config
from .plain import build_pair, plain_predict_slide
from .timing import interleaved, median

SLIDE_SHAPE = (1408, 1876)


class ArraySlide:
    """An RGB array as the slide interface of `predict_slide` (blank beyond the edges)."""

    def __init__(self, array: np.ndarray):
        self.array = array
        self.shape = array.shape[:2]

    def read_region(self, y: int, x: int, h: int, w: int) -> np.ndarray:
        out = np.zeros((h, w, 3), self.array.dtype)
        part = self.array[y : y + h, x : x + w]
        out[: part.shape[0], : part.shape[1]] = part
        return out


def make_slide(shape: tuple[int, int] = SLIDE_SHAPE) -> np.ndarray:
    """A dermoscopy-like slide: the first bundled sample image resized to `shape` (uint8 RGB)."""
    from ..core.io import open_slide
    from ..core.preprocess import resize_image
    from ..core.sample import sample_dir

    path = sorted((sample_dir() / "images").iterdir())[0]
    with open_slide(path) as slide:
        image = slide.read_region(0, 0, *slide.shape)
    return np.clip(resize_image(image[..., :3], shape), 0, 255).round().astype(np.uint8)


def write_run(run_dir: Path, config: SegConfig, seed: int = 0) -> None:
    """A run folder holding randomly initialised networks, as a finished training would leave it."""
    from ..core import checkpoint as ckpt
    from ..core.methods import make_method
    from ..core.runs import write_run_config

    torch.manual_seed(seed)
    method = make_method(config, 2, torch.device("cpu"), "fp32")
    extra = {"classes": ["background", "lesion"], "red_norm_applied": True, "device": "cpu", "precision": "fp32"}
    write_run_config(run_dir, config.to_dict(), {"labeled": [], "unlabeled": [], "val": []}, extra)
    state = {"step": 0, "best": {}, "predict_with": "mean", "method": config.method}
    ckpt.save_checkpoint(run_dir / "last", method.networks, method.optimizers, state)


def slide_prediction(preset_name: str = "paper", reps: int = 3, device: str = "cpu", precision: str = "auto") -> dict:
    """Seconds per slide (mean of both networks' softmax, plus their disagreement), Predictor (at `precision`)
    vs the plain fp32 loop."""
    from ..core.engine import tiling_spec
    from ..core.predictor import Predictor

    config = bench_config(preset_name)
    slide = make_slide()
    with TemporaryDirectory(prefix="s4mi-bench-") as tmp:
        write_run(Path(tmp) / "run", config)
        predictor = Predictor(Path(tmp) / "run", which="mean", device=device, precision=precision)
        cnn, swin = build_pair(config.cnn, config.swin, 2, config.input_size)
        cnn.load_state_dict(predictor.method.networks["cnn"].state_dict())
        swin.load_state_dict(predictor.method.networks["swin"].state_dict())
        cnn, swin = cnn.to(device), swin.to(device)
        spec = tiling_spec(config)
        outputs: dict[str, tuple] = {}

        def engine() -> None:
            result = predictor.predict(ArraySlide(slide))
            outputs["engine"] = (result.labels, result.disagreement)

        def plain() -> None:
            outputs["plain"] = plain_predict_slide(slide, (cnn, swin), spec, red_norm=True, device=device)

        t_engine, t_plain = interleaved(engine, plain, reps)
    agreement = float((outputs["engine"][0] == outputs["plain"][0]).mean())
    engine_s, plain_s = median(t_engine), median(t_plain)
    return {
        "preset": preset_name,
        "slide": f"{slide.shape[0]}x{slide.shape[1]}",
        "precision": predictor.precision,
        "engine_s": engine_s,
        "plain_s": plain_s,
        "ratio": plain_s / engine_s,
        "label_agreement": agreement,
        "engine_times": t_engine,
        "plain_times": t_plain,
    }
