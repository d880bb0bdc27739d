"""GUI-latency part: `python -m s4mi_bench.gui_latency` in its own process on a (virtual) display.

This module never imports napari or the widgets: it runs the GUI benchmark as a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .display import x_display
from .proc import child_env

GUI_MODULE = "s4mi_bench.gui_latency"
CLS_MODULE = "s4mi_bench.gui_cls_latency"
KEYS = {
    GUI_MODULE: ("train_max_gap_ms", "predict_max_gap_ms", "final_insert_ms"),
    CLS_MODULE: ("pretrain_steady_max_gap_ms", "finetune_max_gap_ms", "saliency_max_gap_ms"),
}


def gui_module_file(module: str = GUI_MODULE) -> Path:
    return Path(__file__).resolve().with_name(f"{module.rsplit('.', 1)[1]}.py")


def gui_latency(quick: bool = False, timeout: float = 900) -> dict:
    """The event loop's longest gaps while training and predicting as `s4mi napari` gives them, with the same
    measured in a plain napari with the plugin (a guest: no process-wide tweaks) under ``guest``; and each while
    classifying (CASS pretraining, fine-tuning, prediction and saliency) under ``cls``."""
    owner = gui_latency_run(quick, timeout, guest=False)
    if "skipped" not in owner:
        owner["guest"] = gui_latency_run(quick, timeout, guest=True)
        owner["cls"] = gui_latency_run(quick, timeout, guest=False, module=CLS_MODULE)
        owner["guest"]["cls"] = gui_latency_run(quick, timeout, guest=True, module=CLS_MODULE)
    return owner


def gui_latency_run(quick: bool, timeout: float, guest: bool, module: str = GUI_MODULE) -> dict:
    """One GUI benchmark process, or {'skipped': why}."""
    if not gui_module_file(module).exists():
        return {"skipped": f"{module} is not there"}
    command = [sys.executable, "-m", module, *(["--guest"] if guest else [])]
    try:
        with x_display() as env:
            env = child_env({**env, "S4MI_BENCH_QUICK": "1" if quick else "0"})
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        return {"skipped": f"{module}: {exc}"}
    lines = [line for line in done.stdout.splitlines() if line.strip().startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or done.stdout.strip().splitlines() or ["no output"])[-1]
        return {"skipped": f"{module} failed (exit {done.returncode}): {tail[:200]}"}
    result = json.loads(lines[-1])
    missing = [key for key in KEYS[module] if key not in result]
    if missing:
        return {"skipped": f"{module} printed no {', '.join(missing)}"}
    return result
