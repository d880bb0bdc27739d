"""Training parts: cross-teaching throughput (engine vs plain step) and validation IoU of short trainings."""

from __future__ import annotations

from pathlib import Path
from tempfile import TemporaryDirectory

import torch

from ..core.device import resolve_precision
from ..core.methods.captured import WARMUP_STEPS
from ..core.models import count_parameters
from .batches import bench_config, synthetic_batch
from .plain import PlainCrossTeaching, build_pair
from .timing import interleaved, median


def _pair_params(networks: dict[str, torch.nn.Module]) -> dict[str, int]:
    return {name: count_parameters(net) for name, net in networks.items()}


def throughput(
    preset_name: str, reps: int = 3, device: str = "cpu", overrides: dict | None = None, precision: str = "auto"
) -> dict:
    """s/step of the engine's cross-teaching `train_step` (at `precision`, resolved as the engine resolves it)
    and of the plain fp32 step, same batch, interleaved."""
    from ..core.methods import make_method

    config = bench_config(preset_name, device=device, **(overrides or {}))
    x_l, y_l, x_u = synthetic_batch(config, device=device)
    engine_precision = resolve_precision(precision, torch.device(device))
    torch.manual_seed(0)
    method = make_method(config, 2, torch.device(device), engine_precision)
    torch.manual_seed(0)
    cnn, swin = build_pair(config.cnn, config.swin, 2, config.input_size)
    plain = PlainCrossTeaching(cnn.to(device), swin.to(device), config.lr, config.weight_decay)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def engine_step() -> None:
        method.train_step(1, x_l, y_l, x_u)
        sync()

    def plain_step() -> None:
        plain.train_step(x_l, y_l, x_u, 1.0)
        sync()

    # on CUDA the engine's first steps warm up and capture its graph (once a run): keep them out of the timing
    warmup = WARMUP_STEPS + 2 if device == "cuda" else 1
    t_engine, t_plain = interleaved(engine_step, plain_step, reps, warmup=warmup)
    engine_s, plain_s = median(t_engine), median(t_plain)
    return {
        "preset": preset_name,
        "captured": method.captured,
        "batch": f"{config.labeled_batch}+{config.unlabeled_batch} at {config.input_size}",
        "precision": engine_precision,
        "engine_s": engine_s,
        "plain_s": plain_s,
        "ratio": plain_s / engine_s,
        "engine_params": _pair_params(method.networks),
        "plain_params": _pair_params({"cnn": cnn, "swin": swin}),
        "engine_times": t_engine,
        "plain_times": t_plain,
    }


class _PlainAsMethod:
    """What `engine.evaluate` needs from a method, over the plain pair."""

    def __init__(self, plain: PlainCrossTeaching, device: torch.device):
        self.plain, self.device = plain, device

    def probabilities(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.plain.probabilities(x)


def validation_iou(
    seeds: tuple[int, ...] = (0, 1), steps: int = 100, device: str = "cpu", precision: str = "auto"
) -> dict:
    """Train engine (at `precision`) and plain fp32 step `steps` steps from the same seed and batches on the
    bundled sample project (cpu-small), then score both on its validation slides (pooled foreground IoU of the
    mean prediction)."""
    from ..core.data import TwoStreamSampler, normalise_batch
    from ..core.engine import evaluate, prepare_data
    from ..core.losses import consistency_weight
    from ..core.methods import make_method
    from ..core.sample import create_sample_project

    results: dict[str, list[float]] = {"engine": [], "plain": []}
    with TemporaryDirectory(prefix="s4mi-bench-") as tmp:
        project = create_sample_project(Path(tmp) / "project")
        for seed in seeds:
            config = bench_config("cpu-small", device=device, iterations=steps, seed=seed)
            data = prepare_data(project, config)
            dev = torch.device(device)
            torch.manual_seed(seed)
            method = make_method(config, len(project.classes), dev, resolve_precision(precision, dev))
            torch.manual_seed(seed)
            pair = build_pair(config.cnn, config.swin, len(project.classes), config.input_size)
            plain = PlainCrossTeaching(pair[0].to(dev), pair[1].to(dev), config.lr, config.weight_decay)
            sampler = TwoStreamSampler(data.labeled, data.unlabeled, seed, config.augment, config.max_angle)
            for step in range(steps):
                images, masks, u_images = sampler.batch(step, config.labeled_batch, config.unlabeled_batch)
                x_l = normalise_batch(images, data.red_norm, dev)
                y_l = torch.from_numpy(masks).to(dev).long()
                x_u = normalise_batch(u_images, data.red_norm, dev)
                torch.manual_seed(seed * 1_000_003 + step)
                method.train_step(step, x_l, y_l, x_u)
                torch.manual_seed(seed * 1_000_003 + step)
                plain.set_lr(method.learning_rate(step))
                weight = consistency_weight(step, steps, config.lambda_max, config.rampup_fraction)
                plain.train_step(x_l, y_l, x_u, weight)
            if data.val is None:
                raise RuntimeError("the sample project gave no validation slides")
            results["engine"].append(evaluate(method, data.val, data.red_norm)["iou_mean"])
            results["plain"].append(evaluate(_PlainAsMethod(plain, dev), data.val, data.red_norm)["iou_mean"])
    engine_mean = sum(results["engine"]) / len(seeds)
    plain_mean = sum(results["plain"]) / len(seeds)
    spread = [max(v) - min(v) for v in results.values()] if len(seeds) > 1 else [0.0]
    noise = max(max(spread), 0.02)
    return {
        "seeds": list(seeds),
        "precision": resolve_precision(precision, torch.device(device)),
        "steps": steps,
        "engine": results["engine"],
        "plain": results["plain"],
        "engine_mean": engine_mean,
        "plain_mean": plain_mean,
        "difference": engine_mean - plain_mean,
        "seed_noise": noise,
    }
