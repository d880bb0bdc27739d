"""Training parts: cross-teaching throughput (engine vs plain fp32 step vs simple autocast step, each in fresh
processes, alternating) with FLOPs and the share of the measured peak, and validation IoU of short trainings."""

from __future__ import annotations

import statistics
from pathlib import Path
from tempfile import TemporaryDirectory

import torch

from napari_s4mi.core.device import resolve_precision

from .plain import PlainCrossTeaching, build_pair
from .proc import run_json, wait_for_quiet
from .step import IMPLS, args_for


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def throughput(
    preset_name: str,
    reps: int = 3,
    device: str = "cpu",
    overrides: dict | None = None,
    precision: str = "auto",
    steps: int = 2,
    warmup: int = 1,
    flops: bool = True,
    quiet_wait_s: float = 60.0,
) -> dict:
    """Seconds per step of each implementation: ``reps`` rounds of fresh processes, engine, plain, simple in turn
    (A B C A B C), each process timing ``steps`` steps after ``warmup``. An implementation's time is the median of
    its processes' medians. The FLOPs of one step are counted in the first plain process (after its timing).
    Before each process it waits up to ``quiet_wait_s`` for other processes to leave the cores (under 0.3 cores
    busy); each timed step records how many cores others used meanwhile.

    The simple autocast step runs at the engine's resolved precision; where that is fp32 it would be the plain step
    again, so it is left out."""
    engine_precision = resolve_precision(precision, torch.device(device))
    impls = [impl for impl in IMPLS if impl != "simple" or engine_precision != "fp32"]
    runs: dict[str, list[dict]] = {impl: [] for impl in impls}
    waited = []
    for rep in range(reps):
        for impl in impls:
            count = flops and impl == "plain" and rep == 0
            args = args_for(impl, preset_name, steps, warmup, device, precision, overrides, flops=count)
            waited.append(round(wait_for_quiet(max_wait_s=quiet_wait_s), 1) if quiet_wait_s > 0 else 0.0)
            runs[impl].append(run_json("step", args))
    result: dict = {"preset": preset_name, "precision": engine_precision, "reps": reps, "steps_per_process": steps}
    result["waited_for_quiet_s"] = waited
    errors = [f"{impl}: {run['error']}" for impl, items in runs.items() for run in items if "error" in run]
    if errors:
        result["error"] = "; ".join(errors)[:500]
        result["runs"] = runs
        return result
    first = runs["engine"][0]
    result |= {"batch": first["batch"], "captured": any(r["captured"] for r in runs["engine"])}
    result["memory_saving"] = first["memory_saving"]
    for impl, items in runs.items():
        medians = [r["median_s"] for r in items]
        result[impl] = {
            "s": _median(medians),
            "process_medians": medians,
            "times": [r["times"] for r in items],
            "peak_mb": max(r["peak_mb"] for r in items),
            "other_cores": _median([c for r in items for c in r.get("other_cores", [])]),
            "other_cores_per_step": [r.get("other_cores", []) for r in items],
            "best_s": min(t for r in items for t in r["times"]),
            "precision": items[0]["precision"],
            "params": items[0]["params"],
        }
    result["flops"] = runs["plain"][0].get("flops")
    result["ratio"] = result["plain"]["s"] / result["engine"]["s"]
    if "simple" in result:
        result["ratio_simple"] = result["simple"]["s"] / result["engine"]["s"]
    # the old keys, read by the table and by earlier tooling
    result |= {
        "engine_s": result["engine"]["s"],
        "plain_s": result["plain"]["s"],
        "engine_params": result["engine"]["params"],
        "plain_params": result["plain"]["params"],
    }
    return result


def share_of_peak(item: dict, peak: dict) -> dict[str, float]:
    """Each implementation's matrix-product FLOP/s over the measured peak at its precision (0..1)."""
    flops = item.get("flops")
    if not flops:
        return {}
    shares = {}
    for impl in IMPLS:
        if impl in item and item[impl]["precision"] in peak and item[impl]["s"] > 0:
            achieved = flops / item[impl]["s"] / 1e9
            shares[impl] = achieved / peak[item[impl]["precision"]]
    return shares


class _PlainEvaluation:
    """Pooled foreground IoU of the plain pair's mean softmax on validation batches (as ``SegMethod.evaluate``)."""

    def __init__(self, plain: PlainCrossTeaching):
        self.plain = plain

    def iou(self, batches) -> float:
        from napari_s4mi.core.metrics import ConfusionCounts

        counts = ConfusionCounts()
        for batch in batches:
            probs = self.plain.probabilities(batch["image"])["mean"]
            counts.add(probs.argmax(dim=1).cpu().numpy(), batch["mask"].cpu().numpy())
        return counts.iou()


def validation_iou(
    seeds: tuple[int, ...] = (0, 1), steps: int = 100, device: str = "cpu", precision: str = "auto"
) -> dict:
    """Train the engine (at ``precision``) and the plain fp32 step ``steps`` steps from the same seed and batches
    on the bundled sample project (cpu-small), then score both on its validation slides (pooled foreground IoU of
    the mean prediction). Not timed, so it runs in this process."""
    from napari_s4mi.core.engine import prepare_data
    from napari_s4mi.core.losses import consistency_weight
    from napari_s4mi.core.methods import build_method
    from napari_s4mi.core.sample import create_sample_project

    from .batches import bench_config

    results: dict[str, list[float]] = {"engine": [], "plain": []}
    dev = torch.device(device)
    engine_precision = resolve_precision(precision, dev)
    with TemporaryDirectory(prefix="s4mi-bench-") as tmp:
        project = create_sample_project(Path(tmp) / "project")
        for seed in seeds:
            config = bench_config("cpu-small", device=device, precision=precision, iterations=steps, seed=seed)
            data = prepare_data(project, config)
            torch.manual_seed(seed)
            method = build_method(config, data.run_info(), dev, engine_precision)
            torch.manual_seed(seed)
            cnn, swin = build_pair(
                config.networks["cnn"], config.networks["swin"], len(data.classes), config.input_size
            )
            plain = PlainCrossTeaching(cnn.to(dev), swin.to(dev), config.lr, config.weight_decay)
            for step in range(steps):
                batch = data.to_device(data.batch(step), dev)
                torch.manual_seed(seed * 1_000_003 + step)
                method.train_step(step, batch)
                torch.manual_seed(seed * 1_000_003 + step)
                plain.set_lr(method.learning_rate(step))
                weight = consistency_weight(step, steps, config.lambda_max, config.rampup_fraction)
                plain.train_step(batch["x_l"], batch["y_l"], batch["x_u"], weight)
            if not data.has_validation:
                raise RuntimeError("the sample project gave no validation slides")
            evaluation = method.evaluate(data.validation_batches(dev))
            results["engine"].append(evaluation.metrics["iou_mean"])
            results["plain"].append(_PlainEvaluation(plain).iou(data.validation_batches(dev)))
            method.close()
    engine_mean = sum(results["engine"]) / len(seeds)
    plain_mean = sum(results["plain"]) / len(seeds)
    spread = [max(v) - min(v) for v in results.values()] if len(seeds) > 1 else [0.0]
    noise = max(max(spread), 0.02)
    return {
        "seeds": list(seeds),
        "precision": engine_precision,
        "steps": steps,
        "engine": results["engine"],
        "plain": results["plain"],
        "engine_mean": engine_mean,
        "plain_mean": plain_mean,
        "difference": engine_mean - plain_mean,
        "seed_noise": noise,
    }
