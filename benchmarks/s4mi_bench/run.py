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

PARTS = ("train", "iou", "slide", "memory", "cass", "startup", "gui")
_PARTIAL: dict = {"results": None, "out": None}


def cpu_name() -> str:
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
    print(f"s4mi bench: {name} ... (load {_load()})", file=sys.stderr, flush=True)
    start = time.perf_counter()
    try:
        result = fn()
    except Exception as exc:  # a failing part is reported, not fatal
        traceback.print_exc(file=sys.stderr)
        result = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    print(f"s4mi bench: {name} done in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    return result


def train_plan(preset_name: str, quick: bool, gpu: bool) -> dict[str, int]:
    """Rounds of fresh processes per implementation and timed steps per process (after one warm-up step): a
    `paper` step takes seconds on a CPU, milliseconds on a GPU; single steps on a shared VM vary by ±20%."""
    if gpu:
        return {"reps": 2, "steps": 3} if quick else {"reps": 3, "steps": 20}
    if quick:
        return {"reps": 2, "steps": 1}
    return {"reps": 3, "steps": 2} if preset_name == "paper" else {"reps": 3, "steps": 4}


def run_bench(
    parts: tuple[str, ...] = PARTS,
    quick: bool = False,
    out: Path | None = None,
    device: str = "cpu",
    precision: str = "auto",
) -> dict:
    """Measure the chosen parts; `quick` shrinks every part to a smoke test of a few minutes. The engine runs at
    `precision` as it resolves it on `device` (auto: bf16 on CPUs with native bf16 and on recent GPUs, fp32 on
    AVX2-only CPUs); the plain baseline always runs fp32, the simple autocast step at the engine's precision.
    Every timed implementation runs in fresh processes of its own.

    Environment: ``S4MI_BENCH_THREADS=N`` sets PyTorch's threads in the timed processes (1 keeps the timings
    meaningful on a machine shared with a long job); ``S4MI_BENCH_QUIET_WAIT=S`` is the longest wait, before each
    timed process of a full run, for other processes to leave the cores (default 60 s; 0: no wait)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from napari_s4mi.core.device import cpu_has_fast_bf16, resolve_precision

    from .proc import run_json

    gpu = device != "cpu"
    results: dict = {
        "environment": {
            "mode": "quick" if quick else "full",
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "cpu": cpu_name(),
            "bf16_native": cpu_has_fast_bf16(),
            "threads": int(os.environ.get("S4MI_BENCH_THREADS") or torch.get_num_threads()),
            "torch": torch.__version__,
            "device": device + (f" ({torch.cuda.get_device_name()})" if gpu and torch.cuda.is_available() else ""),
            "engine_precision": resolve_precision(precision, torch.device(device)),
            "load_start": _load(),
        }
    }
    env = results["environment"]
    print(
        f"s4mi bench: {env['cpu']}, native bf16: {'yes' if env['bf16_native'] else 'no'}, {env['threads']} threads, "
        f"torch {env['torch']}; engine precision {env['engine_precision']} on {env['device']}",
        file=sys.stderr,
        flush=True,
    )
    _PARTIAL.update(results=results, out=out)
    if "train" in parts:
        from .proc import wait_for_quiet
        from .training import throughput

        size = "2048" if quick else "4096"

        quiet_wait_s = 0.0 if quick else float(os.environ.get("S4MI_BENCH_QUIET_WAIT", "60"))

        def peak() -> dict:
            waited = wait_for_quiet(max_wait_s=quiet_wait_s)
            return run_json("peak", ["--device", device, "--size", size, "--reps", "5"]) | {"waited_s": waited}

        results["peak"] = _guarded("matmul peak", peak)
        presets = ("cpu-small",) if quick else ("cpu-small", "paper")
        results["train"] = [
            _guarded(
                f"train {name}",
                lambda name=name: throughput(
                    name,
                    device=device,
                    precision=precision,
                    quiet_wait_s=quiet_wait_s,
                    **train_plan(name, quick, gpu),
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
        reps = 1 if quick else 3
        results["slide"] = _guarded(
            "slide", lambda: slide_prediction(name, reps=reps, device=device, precision=precision)
        )
        results["slide"].setdefault("preset", name)
    if "memory" in parts:
        from .memory import peak_memory

        name = "cpu-small" if quick else "paper"
        results["memory"] = _guarded("memory", lambda: peak_memory(name, device=device, precision=precision))
        results["memory"].setdefault("preset", name)
    if "cass" in parts and not gpu:
        from .cass import cass_step

        reps, steps = (1, 1) if quick else (3, 3)
        results["cass"] = _guarded("CASS step", lambda: cass_step("cpu-small", reps, steps, precision))
    if "startup" in parts:
        from .startup import startup_time

        results["startup"] = _guarded("napari start-up", lambda: startup_time(reps=3))
    if "gui" in parts:
        from .gui import gui_latency

        results["gui"] = _guarded("GUI latency", lambda: gui_latency(quick=quick))
    results["environment"]["load_end"] = _load()
    print(_write(results, out))
    return results
