"""The one training loop behind the CLI, the GUI and the tests.

`train_segmentation` is a generator of typed events (see events.py). It checks the cancel token once per
step; cancelling, finishing, or an error all leave a complete `last/` checkpoint of the latest finished step.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import checkpoint as ckpt
from .config import SegConfig
from .data import (
    DataPlan,
    PrefetchedBatches,
    TileSet,
    TwoStreamSampler,
    is_colour,
    load_tiles,
    normalise_batch,
    plan_data,
)
from .device import is_out_of_memory, release_memory, resolve_device, resolve_precision
from .errors import InputError, TrainingError
from .events import CancelToken, Checkpoint, Done, Event, Message, Progress, Validation
from .methods import SegMethod, make_method
from .metrics import ConfusionCounts
from .preprocess import TilingSpec
from .project import Project
from .runs import CONFIG_FILE, append_metrics, read_run_config, write_run_config

LAST, BEST = "last", "best"


@dataclass
class TrainData:
    """Tiles for one run, and whether red normalisation applies."""

    plan: DataPlan
    labeled: TileSet
    unlabeled: TileSet | None
    val: TileSet | None
    red_norm: bool


def tiling_spec(config: SegConfig) -> TilingSpec:
    return TilingSpec(input_size=config.input_size, tile_size=config.tile_size, tile_threshold=config.tile_threshold)


def prepare_data(project: Project, config: SegConfig) -> TrainData:
    """Plan the slide roles and load their tiles; unlabeled slides are read without their masks."""
    plan = plan_data(project, config.label_fraction, config.seed)
    spec = tiling_spec(config)
    labeled = load_tiles(project, plan.labeled, spec, with_masks=True)
    unlabeled = None
    if config.method == "cross-teaching" and config.unlabeled_batch > 0 and plan.unlabeled:
        unlabeled = load_tiles(project, plan.unlabeled, spec, with_masks=False)
    val = load_tiles(project, plan.val, spec, with_masks=True) if plan.val else None
    red_norm = config.red_norm == "on" or (config.red_norm == "auto" and is_colour(labeled))
    return TrainData(plan, labeled, unlabeled, val, red_norm)


def evaluate(method: SegMethod, tiles: TileSet, red_norm: bool, batch_size: int = 16) -> dict[str, float]:
    """Pooled foreground IoU of each network (and of their mean) on validation tiles at network size."""
    counts: dict[str, ConfusionCounts] = {}
    for start in range(0, len(tiles), batch_size):
        x = normalise_batch(tiles.images[start : start + batch_size], red_norm, method.device)
        target = tiles.masks[start : start + batch_size]
        for name, probs in method.probabilities(x).items():
            counts.setdefault(name, ConfusionCounts()).add(probs.argmax(dim=1).cpu().numpy(), target)
    return {f"iou_{name}": c.iou() for name, c in counts.items()}


def _best_choice(metrics: dict[str, float]) -> tuple[str, float]:
    name, value = max(metrics.items(), key=lambda kv: kv[1])
    return name.removeprefix("iou_"), value


def train_segmentation(
    project: Project,
    config: SegConfig,
    run_dir: Path,
    cancel: CancelToken | None = None,
    resume: bool = False,
    init_from: Path | None = None,
) -> Iterator[Event]:
    """Train a segmentation method on a project, writing the run to run_dir; yields events."""
    config.validate()
    cancel = cancel or CancelToken()
    run_dir = Path(run_dir)
    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    if not resume and (run_dir / CONFIG_FILE).exists():
        raise InputError(f"{run_dir}: already holds a run; pick a new --out or resume it (--resume)")
    data = prepare_data(project, config)
    for text in data.plan.messages:
        yield Message(text, "warning")
    torch.manual_seed(config.seed)
    method = make_method(config, len(project.classes), device, precision)
    try:
        yield from _run(project, config, run_dir, cancel, resume, init_from, data, method, device, precision)
    finally:
        # an error's traceback still holds `method`: drop its tensors explicitly so the GPU memory goes now
        method.close()
        del method
        release_memory(device)


def _run(project, config, run_dir, cancel, resume, init_from, data, method, device, precision) -> Iterator[Event]:
    start_step, best = 0, {"score": -1.0, "predict_with": "cnn" if config.method == "supervised" else "mean"}
    if resume:
        state = ckpt.read_state(run_dir / LAST)
        ckpt.load_networks(run_dir / LAST, method.networks)
        ckpt.load_optimizers(run_dir / LAST, method.optimizers)
        if "scaler" in state and method.scaler.is_enabled():  # fp16: go on with the loss scale reached
            method.scaler.load_state_dict(state["scaler"])
        start_step, best = state["step"], state.get("best", best)
        yield Message(f"resuming {run_dir.name} at step {start_step} of {config.iterations}")
    else:
        for report in method.reports:
            yield Message(report.message, "info" if report.source != "random" else "warning")
        if init_from is not None:
            source = Path(init_from) / (BEST if (Path(init_from) / BEST).exists() else LAST)
            ckpt.load_networks(source, method.networks)
            yield Message(f"warm start from {source}")
        write_run_config(
            run_dir,
            config.to_dict(),
            data.plan.roles(),
            {
                "project": str(project.root),
                "classes": project.classes,
                "device": str(device),
                "precision": precision,
                "red_norm_applied": data.red_norm,
                "init_from": str(init_from or ""),
            },
        )
    sampler = TwoStreamSampler(data.labeled, data.unlabeled, config.seed, config.augment, config.max_angle)
    n_unlabeled = config.unlabeled_batch if config.method == "cross-teaching" else 0

    def save(kind: str, step: int) -> Checkpoint:
        state = {"step": step, "best": best, "predict_with": best["predict_with"], "method": config.method}
        if method.scaler.is_enabled():
            state["scaler"] = method.scaler.state_dict()
        return Checkpoint(ckpt.save_checkpoint(run_dir / kind, method.networks, method.optimizers, state), step, kind)

    # the next step's batch is drawn and augmented on a helper thread while this one trains
    batches = PrefetchedBatches(sampler, config.labeled_batch, n_unlabeled, config.iterations)
    try:
        step, step_time, started = start_step, None, time.perf_counter()
        while step < config.iterations:
            if cancel.cancelled:
                yield save(LAST, step)
                yield Done(run_dir, step, cancelled=True, best=best)
                return
            tick = time.perf_counter()
            torch.manual_seed(config.seed * 1_000_003 + step)
            try:
                images, masks, u_images = batches.get(step)
                x_l = normalise_batch(images, data.red_norm, device)
                y_l = torch.from_numpy(masks).to(device).long()
                x_u = normalise_batch(u_images, data.red_norm, device)
                parts = method.train_step(step, x_l, y_l, x_u)
            except Exception as exc:
                if is_out_of_memory(exc):
                    raise TrainingError(
                        f"out of memory at step {step} (batch {config.labeled_batch}+{n_unlabeled}, input "
                        f"{config.input_size} px): lower the batch or input size, or use --precision bf16; the "
                        f"last checkpoint in {run_dir / LAST} is kept"
                    ) from exc
                raise
            if not np.isfinite(parts["loss"]):
                raise TrainingError(
                    f"the loss became {parts['loss']} at step {step}: lower the learning rate (--lr) or check the "
                    f"masks; the last checkpoint in {run_dir / LAST} is kept"
                )
            step += 1
            elapsed = time.perf_counter() - tick
            step_time = elapsed if step_time is None else 0.9 * step_time + 0.1 * elapsed
            loss = parts.pop("loss")
            record = {"step": step, "loss": loss, **parts, "time": round(time.perf_counter() - started, 3)}
            yield Progress(
                step, config.iterations, loss, parts, parts.get("lr", 0.0), step_time * (config.iterations - step)
            )
            if data.val is not None and (step % config.val_every == 0 or step == config.iterations):
                metrics = evaluate(method, data.val, data.red_norm)
                name, score = _best_choice(metrics)
                improved = score > best["score"]
                if improved:
                    best = {"score": score, "predict_with": name, "step": step, **metrics}
                record.update(metrics)
                yield Validation(step, metrics, improved)
                if improved:
                    yield save(BEST, step)
            append_metrics(run_dir, record)
            if step % config.checkpoint_every == 0 or step == config.iterations:
                yield save(LAST, step)
        yield Done(run_dir, step, cancelled=False, best=best)
    finally:
        batches.close()


def load_run_config(run_dir: Path) -> SegConfig:
    """The SegConfig a run was trained with."""
    return SegConfig.from_dict(read_run_config(run_dir)["config"])
