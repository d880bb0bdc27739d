"""`s4mi bench`: run the parts, print the markdown table, write bench.md and bench.json."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

PARTS = ("train", "iou", "slide", "memory", "startup", "gui")
_PARTIAL: dict = {"results": None, "out": None}


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _load() -> str:
    try:
        return " ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def _write(results: dict, out: Path | None) -> str:
    """Render the table and, with `out`, write bench.md and bench.json (after every part, so that an interrupted
    run keeps what it measured)."""
    from .report import markdown_table

    table = markdown_table(results)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "bench.md").write_text(table + "\n")
        (out / "bench.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    return table


def _guarded(name: str, fn: Callable[[], object]) -> object:
    """Run one part; an exception becomes {'error': ...} so the other parts still report. The parts measured so
    far are written first, so that an interrupted run keeps them."""
    if _PARTIAL["out"] is not None:
        _PARTIAL["results"]["environment"]["load_end"] = _load()
        _write(_PARTIAL["results"], _PARTIAL["out"])
    print(f"s4mi bench: {name} ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    try:
        result = fn()
    except Exception as exc:  # a failing part is reported, not fatal
        traceback.print_exc(file=sys.stderr)
        result = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    print(f"s4mi bench: {name} done in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    return result


def _train_reps(preset_name: str, quick: bool, gpu: bool) -> int:
    """Timed steps per implementation: a `paper` step takes ~20-30 s on this CPU, milliseconds on a GPU; single
    `cpu-small` steps vary by ±20% on a shared VM, so it gets six."""
    if gpu:
        return 3 if quick else 20
    return 1 if quick or preset_name == "paper" else 6


def run_bench(
    parts: tuple[str, ...] = PARTS,
    quick: bool = False,
    out: Path | None = None,
    device: str = "cpu",
    precision: str = "auto",
) -> dict:
    """Measure the chosen parts; `quick` shrinks every part to a smoke test of a few minutes. The engine runs at
    `precision` as it resolves it on `device` (auto: fp32 on AVX2 CPUs, bf16 on recent GPUs); the plain baseline
    always runs fp32. Steps are timed more often on a GPU, where they take milliseconds."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from ..core.device import resolve_precision
    from .memory import measure_in_subprocess

    gpu = device != "cpu"

    results: dict = {
        "environment": {
            "mode": "quick" if quick else "full",
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "cpu": _cpu_name(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "device": device,
            "engine_precision": resolve_precision(precision, torch.device(device)),
            "load_start": _load(),
        }
    }
    _PARTIAL.update(results=results, out=out)
    if "train" in parts:
        from .training import throughput

        presets = ("cpu-small",) if quick else ("cpu-small", "paper")
        results["train"] = [
            _guarded(
                f"train {name}",
                lambda name=name: throughput(
                    name, reps=_train_reps(name, quick, gpu), device=device, precision=precision
                ),
            )
            for name in presets
        ]
        for item, name in zip(results["train"], presets, strict=True):
            item.setdefault("preset", name)
    if "iou" in parts:
        from .training import validation_iou

        seeds, steps = ((0,), 6) if quick else ((0, 1), 10)
        results["iou"] = _guarded(
            "validation IoU", lambda: validation_iou(seeds, steps, device=device, precision=precision)
        )
    if "slide" in parts:
        from .slide import slide_prediction

        name = "cpu-small" if quick else "paper"
        results["slide"] = _guarded(
            "slide", lambda: slide_prediction(name, reps=5 if gpu else 1, device=device, precision=precision)
        )
        results["slide"].setdefault("preset", name)
    if "memory" in parts:
        name = "cpu-small" if quick else "paper"
        batch = "4+4 at 128" if quick else "8+8 at 224"
        results["memory"] = {
            "preset": name,
            "batch": batch,
            "engine": _guarded("memory engine", lambda: measure_in_subprocess("engine", name)),
            "plain": _guarded("memory plain", lambda: measure_in_subprocess("plain", name)),
        }
    if "startup" in parts:
        from .startup import startup_time

        results["startup"] = _guarded("napari start-up", lambda: startup_time(reps=3))
    if "gui" in parts:
        from .gui import gui_latency

        results["gui"] = _guarded("GUI latency", lambda: gui_latency(quick=quick))
    results["environment"]["load_end"] = _load()
    print(_write(results, out))
    return results
