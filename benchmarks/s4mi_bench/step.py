"""Training steps of one implementation in this (fresh) process; prints one JSON line.

    python -m s4mi_bench.step --impl engine|plain|simple --preset paper --warmup 1 --steps 2

``engine``: the registry's cross-teaching method as ``s4mi train`` builds it (precision as resolved, memory saving
as its ``auto`` decides on this machine, fused Adam, channels_last U-Net where the precision is not fp32).
``plain``: the plain fp32 eager step. ``simple``: that step under autocast at the engine's precision with
channels_last (see ``plain.py``). Reports the seconds of each timed step, the cores other processes kept busy
meanwhile, the process's peak memory (VmHWM) and, with ``--flops``, the matrix-product FLOPs of one more step
(``torch.utils.flop_counter``; forward and backward). ``S4MI_BENCH_THREADS=N`` sets PyTorch's thread count.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable

IMPLS = ("engine", "plain", "simple")


def _claim_process() -> None:
    """Where S4MI owns the process (the `s4mi` commands), process-wide settings may apply: as `s4mi train`."""
    try:
        from napari_s4mi.core.host import claim_process
    except ImportError:  # a version without guest mode: the settings always applied
        return
    claim_process("s4mi bench")


def build(impl: str, preset: str, device: str, precision: str, overrides: dict) -> tuple[Callable[[], None], dict]:
    """The step function of ``impl`` on a fixed synthetic batch, and what describes it."""
    import torch

    from napari_s4mi.core.device import resolve_precision
    from napari_s4mi.core.models import count_parameters

    from .batches import bench_config, synthetic_batch
    from .plain import PlainCrossTeaching, SimpleAutocastStep, build_pair

    dev = torch.device(device)
    config = bench_config(preset, device=device, precision=precision, **overrides)
    batch = synthetic_batch(config, device=dev)
    resolved = resolve_precision(precision, dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    torch.manual_seed(0)
    if impl == "engine":
        _claim_process()
        from napari_s4mi.core.methods import build_method

        method = build_method(config, {"classes": ["background", "foreground"]}, dev, resolved, weights="none")
        nets = method.networks

        def step() -> None:
            method.train_step(1, batch)
            sync()

        info = {"precision": resolved, "memory_saving": bool(method.memory_saving), "method": method}
    else:
        cnn, swin = build_pair(config.networks["cnn"], config.networks["swin"], 2, config.input_size)
        cnn, swin = cnn.to(dev), swin.to(dev)
        if impl == "plain":
            runner = PlainCrossTeaching(cnn, swin, config.lr, config.weight_decay)
            info = {"precision": "fp32", "memory_saving": False}
        else:
            runner = SimpleAutocastStep(cnn, swin, config.lr, config.weight_decay, dev.type, resolved)
            info = {"precision": resolved, "memory_saving": False}
        nets = {"cnn": cnn, "swin": swin}

        def step() -> None:
            runner.train_step(batch["x_l"], batch["y_l"], batch["x_u"], 1.0)
            sync()

    info["params"] = {name: count_parameters(net) for name, net in nets.items()}
    info["batch"] = f"{config.labeled_batch}+{config.unlabeled_batch} at {config.input_size}"
    return step, info


def measure(
    impl: str,
    preset: str,
    steps: int,
    warmup: int = 1,
    device: str = "cpu",
    precision: str = "auto",
    overrides: dict | None = None,
    flops: bool = False,
) -> dict:
    """Build ``impl``, run ``warmup`` untimed and ``steps`` timed steps; times, memory and (optionally) FLOPs."""
    import torch

    from .proc import OtherLoad, current_rss_mb, peak_rss_mb

    threads = os.environ.get("S4MI_BENCH_THREADS")
    if threads:  # e.g. 1 on a machine shared with other work (no OpenMP threads waiting on a descheduled one)
        torch.set_num_threads(int(threads))
    started = time.perf_counter()
    step, info = build(impl, preset, device, precision, overrides or {})
    method = info.pop("method", None)
    models_mb = current_rss_mb()
    if impl == "engine" and device == "cuda":
        from napari_s4mi.core.methods.captured import WARMUP_STEPS

        warmup = max(warmup, WARMUP_STEPS + 2)  # the first steps warm up and capture the CUDA graph (once a run)
    for _ in range(warmup):
        step()
    times, others = [], []
    for _ in range(steps):
        load = OtherLoad().start()
        tick = time.perf_counter()
        step()
        times.append(time.perf_counter() - tick)
        others.append(round(load.cores(), 2))
    result = {
        "impl": impl,
        "preset": preset,
        "device": device,
        **info,
        "captured": bool(method is not None and method.captured),
        "threads": torch.get_num_threads(),
        "warmup": warmup,
        "times": times,
        "other_cores": others,
        "median_s": statistics.median(times) if times else float("nan"),
        "models_mb": round(models_mb),
        "peak_mb": round(peak_rss_mb()),
        "process_s": round(time.perf_counter() - started, 1),
    }
    if flops:
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter:
            step()
        result["flops"] = counter.get_total_flops()
    if overrides:
        result["overrides"] = overrides
    return result


def args_for(
    impl: str,
    preset: str,
    steps: int,
    warmup: int = 1,
    device: str = "cpu",
    precision: str = "auto",
    overrides: dict | None = None,
    flops: bool = False,
) -> list[str]:
    """The command-line arguments of :func:`main` for these settings."""
    args = ["--impl", impl, "--preset", preset, "--steps", str(steps), "--warmup", str(warmup)]
    args += ["--device", device, "--precision", precision]
    if overrides:
        args += ["--set", *(f"{key}={json.dumps(value)}" for key, value in overrides.items())]
    return args + (["--flops"] if flops else [])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", choices=IMPLS, required=True)
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="auto", help="the engine's precision (the simple step's too)")
    parser.add_argument("--set", nargs="*", default=[], help="config overrides KEY=JSON")
    parser.add_argument("--flops", action="store_true", help="count the FLOPs of one more step")
    args = parser.parse_args(argv)
    overrides = {key: json.loads(value) for key, value in (item.split("=", 1) for item in args.set)}
    result = measure(
        args.impl, args.preset, args.steps, args.warmup, args.device, args.precision, overrides, args.flops
    )
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
