"""napari start-up time with and without this plugin, each in fresh processes (the plugin disabled through
a throw-away napari settings file, ``NAPARI_CONFIG``, so the user's settings are never touched)."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

from .display import x_display

PLUGIN = "napari-s4mi"
STARTUP_SCRIPT = """
import napari
from qtpy.QtWidgets import QApplication
viewer = napari.Viewer(show=True)
QApplication.processEvents()
import sys
print('{"torch_imported": %s}' % str('torch' in sys.modules).lower(), flush=True)
viewer.close()
"""


def _settings(folder: Path, disabled: bool) -> Path:
    path = folder / ("without.yaml" if disabled else "with.yaml")
    settings = {"plugins": {"disabled_plugins": [PLUGIN] if disabled else []}}
    path.write_text(json.dumps(settings))  # JSON is valid YAML
    return path


def _start_once(env: dict[str, str], config: Path, timeout: float) -> tuple[float, dict]:
    env = {**env, "NAPARI_CONFIG": str(config)}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", STARTUP_SCRIPT], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"napari did not start (exit {done.returncode}): {tail}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    return elapsed, json.loads(lines[-1]) if lines else {}


def startup_time(reps: int = 3, timeout: float = 300) -> dict:
    """Median seconds from `python` to a shown, painted napari viewer, with and without the plugin."""
    with TemporaryDirectory(prefix="s4mi-bench-napari-") as tmp, x_display() as env:
        folder = Path(tmp)
        env = {**env, "HOME": os.environ.get("HOME", tmp)}
        configs = {"with": _settings(folder, False), "without": _settings(folder, True)}
        _start_once(env, configs["with"], timeout)  # warm the file cache and napari's plugin cache
        times: dict[str, list[float]] = {"with": [], "without": []}
        torch_loaded = False
        for rep in range(reps):
            order = ("with", "without") if rep % 2 == 0 else ("without", "with")
            for key in order:
                seconds, info = _start_once(env, configs[key], timeout)
                times[key].append(seconds)
                torch_loaded = torch_loaded or (key == "with" and info.get("torch_imported", False))
    with_s, without_s = statistics.median(times["with"]), statistics.median(times["without"])
    return {
        "with_s": with_s,
        "without_s": without_s,
        "overhead_s": with_s - without_s,
        "torch_imported_at_startup": torch_loaded,
        "times": times,
    }
