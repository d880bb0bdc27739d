"""Slide part: a 1408×1876 slide predicted and stitched by the engine's predictor and by the plain tile loop, each
in fresh processes (alternating), from the same run folder (randomly initialised networks).

    python -m s4mi_bench.slide --impl engine|plain --run RUN --slide slide.npy --reps 1 --labels out.npy
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np

from .proc import run_json

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
    from napari_s4mi.core.io import open_slide
    from napari_s4mi.core.preprocess import resize_image
    from napari_s4mi.core.sample import sample_dir

    path = sorted((sample_dir() / "images").iterdir())[0]
    with open_slide(path) as slide:
        image = slide.read_region(0, 0, *slide.shape)
    return np.clip(resize_image(image[..., :3], shape), 0, 255).round().astype(np.uint8)


def write_run(run_dir: Path, preset_name: str, seed: int = 0) -> None:
    """A run folder holding randomly initialised networks, as a finished training would leave it."""
    import torch

    from napari_s4mi.core import checkpoint as ckpt
    from napari_s4mi.core.methods import build_method
    from napari_s4mi.core.runs import write_run_config

    from .batches import bench_config

    config = bench_config(preset_name, device="cpu", precision="fp32")
    torch.manual_seed(seed)
    run_info = {"classes": ["background", "lesion"], "red_norm_applied": True}
    method = build_method(config, run_info, torch.device("cpu"), "fp32", weights="none")
    extra = run_info | {"device": "cpu", "precision": "fp32"}
    write_run_config(run_dir, config.to_dict(), {"labeled": [], "unlabeled": [], "val": []}, extra)
    state = {"step": 0, "best": None, "predict_with": "mean", "method": config.method, "task": config.task}
    ckpt.save_checkpoint(run_dir / "last", method.networks, method.optimizers, state)


def predict_in_process(
    impl: str, run_dir: Path, slide: np.ndarray, reps: int, device: str, precision: str
) -> tuple[dict, np.ndarray]:
    """One untimed and ``reps`` timed predictions of the slide; the labels of the last."""
    import torch

    from napari_s4mi.core import checkpoint as ckpt
    from napari_s4mi.core.engine import load_run_config
    from napari_s4mi.core.tasks.segmentation import tiling_spec

    from .plain import build_pair, plain_predict_slide

    if impl == "engine":
        from napari_s4mi.core.predictor import open_predictor

        predictor = open_predictor(run_dir, which="mean", device=device, precision=precision)
        used = predictor.precision

        def predict() -> np.ndarray:
            return np.asarray(predictor.predict(ArraySlide(slide)).labels)
    else:
        config = load_run_config(run_dir)
        cnn, swin = build_pair(config.networks["cnn"], config.networks["swin"], 2, config.input_size)
        cnn, swin = cnn.to(device), swin.to(device)
        ckpt.load_networks(run_dir / "last", {"cnn": cnn, "swin": swin})
        spec, used = tiling_spec(config), "fp32"

        def predict() -> np.ndarray:
            return plain_predict_slide(slide, (cnn, swin), spec, red_norm=True, device=device)[0]

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    labels = predict()
    times = []
    for _ in range(reps):
        tick = time.perf_counter()
        labels = predict()
        sync()
        times.append(time.perf_counter() - tick)
    return {"impl": impl, "precision": used, "times": times, "median_s": statistics.median(times)}, labels


def slide_prediction(
    preset_name: str = "paper", reps: int = 3, device: str = "cpu", precision: str = "auto", per_process: int = 1
) -> dict:
    """Seconds per slide (mean of both networks' softmax, plus their disagreement): the engine's predictor (at
    ``precision``) vs the plain fp32 loop, ``reps`` rounds of fresh processes each, alternating."""
    slide = make_slide()
    runs: dict[str, list[dict]] = {"engine": [], "plain": []}
    with TemporaryDirectory(prefix="s4mi-bench-") as tmp:
        folder = Path(tmp)
        write_run(folder / "run", preset_name)
        np.save(folder / "slide.npy", slide)
        for _ in range(reps):
            for impl in runs:
                args = ["--impl", impl, "--run", str(folder / "run"), "--slide", str(folder / "slide.npy")]
                args += ["--reps", str(per_process), "--device", device, "--precision", precision]
                args += ["--labels", str(folder / f"{impl}.npy")]
                runs[impl].append(run_json("slide", args))
        errors = [f"{impl}: {r['error']}" for impl, items in runs.items() for r in items if "error" in r]
        if errors:
            return {"preset": preset_name, "error": "; ".join(errors)[:500]}
        agreement = float((np.load(folder / "engine.npy") == np.load(folder / "plain.npy")).mean())
    engine_s = statistics.median(r["median_s"] for r in runs["engine"])
    plain_s = statistics.median(r["median_s"] for r in runs["plain"])
    return {
        "preset": preset_name,
        "slide": f"{slide.shape[0]}x{slide.shape[1]}",
        "precision": runs["engine"][0]["precision"],
        "engine_s": engine_s,
        "plain_s": plain_s,
        "ratio": plain_s / engine_s,
        "label_agreement": agreement,
        "engine_times": [r["times"] for r in runs["engine"]],
        "plain_times": [r["times"] for r in runs["plain"]],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", choices=("engine", "plain"), required=True)
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--slide", type=Path, required=True)
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--labels", type=Path, help="save the labels here (.npy)")
    args = parser.parse_args(argv)
    if os.environ.get("S4MI_BENCH_THREADS"):  # as in s4mi_bench.step
        import torch

        torch.set_num_threads(int(os.environ["S4MI_BENCH_THREADS"]))
    result, labels = predict_in_process(
        args.impl, args.run, np.load(args.slide), args.reps, args.device, args.precision
    )
    if args.labels is not None:
        np.save(args.labels, labels)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
