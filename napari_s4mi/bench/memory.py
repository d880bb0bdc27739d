"""Peak resident memory of training steps, each implementation in a fresh process (its own VmHWM).

Run as ``python -m napari_s4mi.bench.memory --impl engine|plain --preset paper``; prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys


def _rss_mb() -> float:
    """This process's peak resident set size in MiB.

    On Linux the high-water mark of this program's own memory (VmHWM): ``ru_maxrss`` also keeps the RSS of the
    process that forked us (a benchmark that has trained in-process would report its own size, measured: 6.8 GB
    for a 2.9 GB step). Elsewhere ``ru_maxrss`` (KiB on Linux, bytes on macOS)."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def _current_rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    import os

    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure(impl: str, preset_name: str, steps: int, overrides: dict | None = None) -> dict:
    """Build one implementation, run `steps` training steps, and report memory before and at peak."""
    import torch

    from .batches import bench_config, synthetic_batch

    config = bench_config(preset_name, **(overrides or {}))
    x_l, y_l, x_u = synthetic_batch(config)
    torch.manual_seed(0)
    if impl == "engine":
        from ..core.methods import make_method

        method = make_method(config, 2, torch.device("cpu"), "fp32")

        def step(i: int) -> None:
            method.train_step(i, x_l, y_l, x_u)
    else:
        from .plain import PlainCrossTeaching, build_pair

        plain = PlainCrossTeaching(*build_pair(config.cnn, config.swin, 2, config.input_size))

        def step(i: int) -> None:
            plain.train_step(x_l, y_l, x_u, 1.0)

    before = _current_rss_mb()
    for i in range(steps):
        step(i)
    return {
        "impl": impl,
        "preset": preset_name,
        "steps": steps,
        "models_mb": round(before),
        "peak_mb": round(_rss_mb()),
    }


def measure_in_subprocess(impl: str, preset_name: str, steps: int = 2, timeout: float = 1800) -> dict:
    """Run :func:`measure` in a fresh interpreter so that each peak is its own."""
    command = [sys.executable, "-m", "napari_s4mi.bench.memory", "--impl", impl, "--preset", preset_name]
    done = subprocess.run(
        [*command, "--steps", str(steps)], capture_output=True, text=True, timeout=timeout, check=False
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"impl": impl, "preset": preset_name, "error": f"exit {done.returncode}: {tail[0]}"}
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", choices=("engine", "plain"), required=True)
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--set", nargs="*", default=[], help="config overrides KEY=JSON (engine only)")
    args = parser.parse_args(argv)
    overrides = {key: json.loads(value) for key, value in (item.split("=", 1) for item in args.set)}
    result = measure(args.impl, args.preset, args.steps, overrides)
    print(json.dumps(result | ({"overrides": overrides} if overrides else {})), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
