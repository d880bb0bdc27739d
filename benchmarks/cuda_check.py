"""CUDA check of the training and prediction paths: speed, loss, peak memory, memory release, cancel/resume.

Trains the bundled sample project with the `cpu-small` and `paper` presets in fp32, bf16 and fp16 for a few
dozen steps, checks that GPU memory is given back when a run ends, is cancelled, is closed or fails, resumes a
cancelled run, predicts a 1408x1876 slide in several precisions, and prints markdown tables. Random weights
only (HF_HUB_OFFLINE=1). Not run in CI (needs a GPU; `--device cpu` is a smoke test).

    python benchmarks/cuda_check.py --iterations 30
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from napari_s4mi.core.engine import train as train_run  # noqa: E402
from napari_s4mi.core.events import CancelToken, Done, Event, Progress  # noqa: E402
from napari_s4mi.core.io import open_slide  # noqa: E402
from napari_s4mi.core.predictor import open_predictor  # noqa: E402
from napari_s4mi.core.project import Project  # noqa: E402
from napari_s4mi.core.registry import make_config  # noqa: E402
from napari_s4mi.core.sample import create_sample_project, sample_dir  # noqa: E402
from napari_s4mi.core.seg_config import SegConfig  # noqa: E402

MIB = 2**20
WARMUP = 5
Row = dict[str, Any]


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def allocated(device: str) -> float:
    """MiB held by live tensors (the caching allocator's cache not counted); NaN off CUDA."""
    return torch.cuda.memory_allocated() / MIB if device == "cuda" else float("nan")


def peak(device: str) -> float:
    return torch.cuda.max_memory_allocated() / MIB if device == "cuda" else float("nan")


def reset_peak(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def collected(device: str) -> float:
    """MiB still allocated after a garbage collection (what reference cycles were holding is freed)."""
    gc.collect()
    return allocated(device)


def drive(
    events: Iterator[Event], device: str, cancel: CancelToken, cancel_after: int = 0, close_after: int = 0
) -> Row:
    """Consume a run's events, timing steps; cancel (token) or close (generator) after some steps."""
    stamps: list[float] = []
    losses: list[float] = []
    done: Done | None = None
    for event in events:
        if isinstance(event, Progress):
            sync(device)
            stamps.append(time.perf_counter())
            losses.append(event.loss)
            if cancel_after and len(losses) == cancel_after:
                cancel.cancel()
            if close_after and len(losses) == close_after:
                events.close()  # type: ignore[attr-defined]
                break
        elif isinstance(event, Done):
            done = event
    steady = np.diff(stamps[WARMUP:-1]) if len(stamps) > WARMUP + 2 else np.diff(stamps)
    return {
        "steps": done.step if done else len(losses),
        "cancelled": done.cancelled if done else "closed",
        "s_step": float(np.median(steady)) if len(steady) else float("nan"),
        "loss": f"{losses[0]:.3f} -> {losses[-1]:.3f}" if losses else "-",
        "finite": bool(losses) and bool(np.isfinite(losses).all()),
    }


def train(project: Project, config: SegConfig, run_dir: Path, resume: bool = False, **stop: int) -> Row:
    """One run: its step time, losses, peak memory and the memory left when its generator has ended."""
    device = config.device
    gc.collect()
    reset_peak(device)
    before = allocated(device)
    cancel = CancelToken()
    try:
        row = drive(train_run(project, config, run_dir, cancel, resume=resume), device, cancel, **stop)
    except Exception as exc:  # reported in the table
        row = {"error": f"{type(exc).__name__}: {str(exc)[:120]}"}
    row |= {"before_MiB": before, "peak_MiB": peak(device), "after_MiB": allocated(device)}
    row["after_gc_MiB"] = collected(device)
    return row


def failing_run(project: Project, config: SegConfig, run_dir: Path, fail_at: int = 3) -> Row:
    """A run that fails mid-way (as an OOM or NaN loss does, raised inside the loop): memory after the error."""
    device = config.device
    gc.collect()
    events = train_run(project, config, run_dir)
    steps = 0
    try:
        for event in events:
            if isinstance(event, Progress):
                steps += 1
                if steps == fail_at:
                    events.throw(RuntimeError("simulated failure inside the training loop"))
    except RuntimeError as exc:
        error = str(exc)
    else:
        error = "no error raised"
    del events
    return {"steps": steps, "error": error, "after_MiB": allocated(device), "after_gc_MiB": collected(device)}


def make_large_slide(folder: Path, height: int = 1408, width: int = 1876) -> Path:
    """A held-back sample slide resized to height x width (a typical ISIC size: 12 tiles of 480 px)."""
    from PIL import Image

    source = Image.open(sample_dir() / "images" / "ISIC_0000124.jpg").convert("RGB")
    path = folder / "large.png"
    source.resize((width, height), Image.Resampling.BILINEAR).save(path)
    return path


def predict(
    run_dir: Path, slide_path: Path, device: str, precisions: list[str], reference: np.ndarray | None = None
) -> tuple[list[Row], np.ndarray]:
    """Predict the slide per precision: median time, label sanity, agreement with the reference labels
    (default: the first precision's)."""
    rows: list[Row] = []
    repeats = 3 if device == "cuda" else 1
    for precision in precisions:
        gc.collect()
        reset_peak(device)
        predictor = open_predictor(run_dir, device=device, precision=precision)
        times = []
        with open_slide(slide_path) as slide:
            for _ in range(repeats + 1):
                sync(device)
                tick = time.perf_counter()
                result = predictor.predict(slide)
                sync(device)
                times.append(time.perf_counter() - tick)
        labels, dis = np.asarray(result.labels), result.disagreement
        reference = labels if reference is None else reference
        values = sorted(int(v) for v in np.unique(labels))
        row = {
            "device": device,
            "precision": precision,
            "with": predictor.which,
            "tiles": result.n_tiles,
            "time_s": statistics.median(times[1:]),
            "shape": "x".join(map(str, labels.shape)),
            "dtype": str(labels.dtype),
            "values": values,
            "sane": labels.shape == slide.shape and labels.dtype == np.uint8 and set(values) <= {0, 1},
            "fg_%": 100 * float(labels.mean()),
            "agree_%": f"{100 * float((labels == reference).mean()):.3f}",
            "dis_range": "-" if dis is None else f"{float(np.min(dis)):.3f}..{float(np.max(dis)):.3f}",
            "peak_MiB": peak(device),
        }
        del predictor, result
        row["after_del_MiB"] = allocated(device)
        row["after_gc_MiB"] = collected(device)
        rows.append(row)
    assert reference is not None
    return rows, reference


def supported_precisions(device: str) -> list[str]:
    if device != "cuda":
        return ["fp32"]
    return ["fp32", "bf16", "fp16"] if torch.cuda.is_bf16_supported() else ["fp32", "fp16"]


def table(title: str, rows: list[Row]) -> str:
    """A markdown table over the union of the rows' keys (floats to 3 significant digits)."""
    keys = list(dict.fromkeys(k for row in rows for k in row))

    def cell(value: Any) -> str:
        return f"{value:.3g}" if isinstance(value, float) else str(value).replace("|", "/")

    lines = [f"### {title}", "", "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(cell(row.get(k, "")) for k in keys) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def versions(device: str) -> str:
    import timm

    cudnn = torch.backends.cudnn.version()
    text = f"torch {torch.__version__} (CUDA {torch.version.cuda}, cuDNN {cudnn}), timm {timm.__version__}"
    try:
        import segmentation_models_pytorch as smp

        text += f", smp {smp.__version__}"
    except ImportError:
        pass
    if device == "cuda":
        text = f"{torch.cuda.get_device_name()}, " + text
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--presets", nargs="+", default=["cpu-small", "paper"])
    parser.add_argument("--precisions", nargs="+", default=None)
    parser.add_argument("--out", type=Path, default=None, help="work folder (default: a temporary one)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")  # says when a step is captured
    device, n = args.device, args.iterations
    precisions = args.precisions or supported_precisions(device)
    root = args.out or Path(tempfile.mkdtemp(prefix="s4mi-cuda-"))
    project = create_sample_project(root / "project")
    print(versions(device), flush=True)

    def config(name: str, precision: str, iterations: int = n, **extra: Any) -> SegConfig:
        every = max(iterations, 1)
        return make_config("segmentation", "cross-teaching", name, iterations=iterations, device=device,
                           precision=precision, val_every=every, checkpoint_every=every, **extra)  # fmt: skip

    training: list[Row] = []
    for name in args.presets:
        variants: list[tuple[str, dict[str, Any]]] = [(p, {}) for p in precisions]
        variants += [(p, {"cuda_graphs": False}) for p in precisions if p != "fp16"]  # the eager step, for comparison
        variants.append((precisions[-1], {"memory_saving": "on", "fused_attention": True}))
        for precision, extra in variants:
            label = f"{name}/{precision}" + ("+ckpt+sdpa" if "memory_saving" in extra else "")
            label += "+eager" if extra.get("cuda_graphs") is False else ""
            print(f"train {label}", flush=True)
            row = train(project, config(name, precision, **extra), root / "runs" / label.replace("/", "-"))
            training.append({"run": label} | row)

    lifecycle: list[Row] = []
    name, precision = args.presets[-1], precisions[-1]
    runs = root / "runs"
    print("cancel, close, fail, resume", flush=True)
    cancelled = train(project, config(name, precision, 2 * n), runs / "cancelled", cancel_after=n // 2)
    lifecycle.append({"case": f"cancel token at step {n // 2}"} | cancelled)
    closed = train(project, config(name, precision, 2 * n), runs / "closed", close_after=n // 2)
    lifecycle.append({"case": f"generator closed at step {n // 2}"} | closed)
    for memory_saving in ("off", "on"):
        failed = failing_run(project, config(name, precision, 2 * n, memory_saving=memory_saving), runs / "failed")
        lifecycle.append({"case": f"error inside the loop (memory_saving={memory_saving})"} | failed)
        (runs / "failed").rename(runs / f"failed-{memory_saving}")
    resumed = train(project, config(name, precision, 2 * n), runs / "cancelled", resume=True)
    resumed["finished"] = resumed.get("steps") == 2 * n and resumed.get("cancelled") is False
    lifecycle.append({"case": "resume the cancelled run"} | resumed)
    if "bf16" in precisions:  # the same life cycle with the captured CUDA-graph step
        graphed = train(project, config(name, "bf16", 2 * n), runs / "graphed", cancel_after=n // 2)
        lifecycle.append({"case": f"bf16 (CUDA graph): cancel token at step {n // 2}"} | graphed)
        failed = failing_run(project, config(name, "bf16", 2 * n), runs / "failed-graphed", fail_at=6)
        lifecycle.append({"case": "bf16 (CUDA graph): error inside the loop at step 6"} | failed)
        resumed = train(project, config(name, "bf16", 2 * n), runs / "graphed", resume=True)
        resumed["finished"] = resumed.get("steps") == 2 * n and resumed.get("cancelled") is False
        lifecycle.append({"case": "bf16 (CUDA graph): resume the cancelled run"} | resumed)

    print("predict", flush=True)
    slide_path = make_large_slide(root)
    prediction, reference = predict(runs / "cancelled", slide_path, device, precisions)
    if device != "cpu":
        prediction += predict(runs / "cancelled", slide_path, "cpu", ["fp32"], reference)[0]
    saving = runs / f"{name}-{precision}+ckpt+sdpa"  # a run with activation checkpointing (module cycles)
    if saving.exists():
        prediction += [{"run": "ckpt"} | row for row in predict(saving, slide_path, device, ["fp32"])[0]]

    print()
    print(f"**Device**: {versions(device)}; {n} steps per run, s/step = median after {WARMUP} warm-up steps\n")
    print(table("Training", training))
    print(table(f"Run life cycle ({name}, {precision}; MiB = torch.cuda.memory_allocated)", lifecycle))
    print(table("Prediction of a 1408x1876 slide (agree_%: labels equal to the first row's)", prediction))
    clear = getattr(torch._C, "_cuda_clearCublasWorkspaces", None)
    if device == "cuda" and clear is not None:
        left = allocated(device)
        clear()  # cuBLAS/cuBLASLt keep one workspace per handle and stream, allocated through torch's allocator
        print(f"Memory left at the end: {left:.1f} MiB, of which cuBLAS workspaces: {left - allocated(device):.1f} MiB")


if __name__ == "__main__":
    main()
