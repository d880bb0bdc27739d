"""CASS pretraining part: the engine's CASS step against a plain fp32 eager step over the same networks and batch.

    python -m s4mi_bench.cass --impl engine|plain --preset cpu-small --steps 4   (one fresh process, one JSON line)

``engine``: the registry's CASS method as ``s4mi train cls`` builds it (precision as resolved, fused Adam,
channels_last CNN where the precision is not fp32). ``plain``: the same two networks (ResNet and ViT from timm with
the same projection heads, same seed, so the same weights), ``torch.optim.Adam`` with its defaults, one fp32
eager forward of each network on the batch, 2 - 2 cos of the normalised outputs, ``zero_grad``, ``backward``,
``step``. The part runs each in fresh processes, alternating, and reports the median, the ratio and peak memory.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

IMPLS = ("engine", "plain")


def measure(impl: str, preset: str, steps: int, precision: str = "auto") -> dict:
    import torch

    from napari_s4mi.core.device import resolve_precision
    from napari_s4mi.core.host import claim_process
    from napari_s4mi.core.methods import build_method
    from napari_s4mi.core.methods.cass import cass_loss
    from napari_s4mi.core.registry import make_config

    from .proc import peak_rss_mb

    config = make_config("pretraining", "cass", preset, device="cpu", precision=precision)
    config.set_weights("none")
    resolved = resolve_precision(precision, torch.device("cpu"))
    torch.manual_seed(0)
    x = torch.randn(config.batch, 3, config.input_size, config.input_size, generator=torch.Generator().manual_seed(1))
    if impl == "engine":
        claim_process("s4mi bench")
        method = build_method(config, {}, torch.device("cpu"), resolved, weights="none")

        def step() -> None:
            method.train_step(1, {"view": x})
    else:
        resolved = "fp32"
        method = build_method(config, {}, torch.device("cpu"), "fp32", weights="none")  # the same networks
        cnn, vit = (method.networks[name].to(memory_format=torch.contiguous_format) for name in config.networks)
        params = [p for net in (cnn, vit) for p in net.parameters()]
        optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)

        def step() -> None:
            cnn.train()
            vit.train()
            optimizer.zero_grad()
            loss = cass_loss(cnn(x), vit(x))
            loss.backward()
            optimizer.step()

    step()  # warm-up
    times = []
    for _ in range(steps):
        tick = time.perf_counter()
        step()
        times.append(time.perf_counter() - tick)
    return {
        "impl": impl,
        "preset": preset,
        "precision": resolved,
        "batch": f"{config.batch} at {config.input_size}",
        "times": times,
        "median_s": statistics.median(times),
        "peak_mb": round(peak_rss_mb()),
    }


def cass_step(preset: str = "cpu-small", reps: int = 3, steps: int = 3, precision: str = "auto") -> dict:
    """Both implementations in fresh processes, alternating; medians, ratio, peak memory."""
    from .proc import run_json

    runs: dict[str, list[dict]] = {impl: [] for impl in IMPLS}
    for _ in range(reps):
        for impl in IMPLS:
            args = ["--impl", impl, "--preset", preset, "--steps", str(steps), "--precision", precision]
            runs[impl].append(run_json("cass", args))
    errors = [run["error"] for items in runs.values() for run in items if "error" in run]
    if errors:
        return {"error": "; ".join(errors)[:500]}
    result = {"preset": preset, "batch": runs["engine"][0]["batch"]}
    for impl, items in runs.items():
        result[impl] = {
            "s": statistics.median(r["median_s"] for r in items),
            "peak_mb": max(r["peak_mb"] for r in items),
            "precision": items[0]["precision"],
        }
    result["ratio"] = result["plain"]["s"] / result["engine"]["s"]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", choices=IMPLS, required=True)
    parser.add_argument("--preset", default="cpu-small")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.impl, args.preset, args.steps, args.precision)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
