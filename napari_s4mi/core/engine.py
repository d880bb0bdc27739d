"""The one training loop behind the CLI, the GUI and the tests, for every task and method.

:func:`train` is a generator of typed events (see events.py). The config names the method; the registry gives
its task's data (``tasks/``) and its Method class (``methods/``). The loop checks the cancel token once per
step; cancelling, finishing, or an error all leave a complete ``last/`` checkpoint of the latest finished step
(written every ``checkpoint_every`` steps and every ``checkpoint_every_s`` seconds). One process at a time writes
a run folder (``run_lock``); where a stopped or crashed run starts again is ``run_state``'s decision.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from . import checkpoint as ckpt
from .config import TrainConfig
from .device import is_out_of_memory, release_memory, resolve_device, resolve_precision
from .disk import ensure_free_space, writing
from .errors import TrainingError
from .events import BestCheckpoint, CancelToken, Checkpoint, Done, Event, Message, Progress, Validation
from .methods.base import Method
from .project import Project
from .registry import MethodEntry, config_from_dict, data_class_for, entry_for
from .run_lock import RunLock
from .run_state import BEST, LAST, StartPlan, plan_start
from .runs import CONFIG_FILE, append_metrics, read_run_config, write_run_config
from .tasks.base import PrefetchedBatches, TrainingData

__all__ = ["BEST", "LAST", "load_run_config", "prepare_data", "train"]


def prepare_data(project: Project, config: TrainConfig) -> TrainingData:
    """The training data for a run of ``config`` on ``project`` (its method's own, else its task's)."""
    return data_class_for(config)(project, config)


def train(
    project: Project,
    config: TrainConfig,
    run_dir: Path,
    cancel: CancelToken | None = None,
    resume: bool = False,
    init_from: Path | None = None,
    restart: bool = False,
) -> Iterator[Event]:
    """Train the config's method on a project, writing the run to run_dir; yields events.

    The run folder is locked for the whole run (a second process is refused). ``resume`` continues from the
    newest complete checkpoint (from step 0 with the saved settings when there is none); ``restart`` starts a
    folder that holds no complete checkpoint over (see ``run_state.plan_start``)."""
    config.validate()
    entry = entry_for(config)
    cancel = cancel or CancelToken()
    run_dir = Path(run_dir)
    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    with writing("creating the run folder"):
        lock = RunLock(run_dir).acquire()
    try:
        with writing("preparing the run folder"):
            plan = plan_start(run_dir, resume, restart, config.iterations)
        yield from _train_locked(project, config, run_dir, cancel, plan, init_from, entry, device, precision)
    finally:
        lock.release()


def _train_locked(
    project: Project,
    config: TrainConfig,
    run_dir: Path,
    cancel: CancelToken,
    plan: StartPlan,
    init_from: Path | None,
    entry: MethodEntry,
    device: torch.device,
    precision: str,
) -> Iterator[Event]:
    """The run, once its folder is locked and its start planned."""
    resuming = plan.checkpoint is not None
    if plan.message:
        yield Message(plan.message, "info" if resuming else "warning")
    if not resuming and init_from is None and (run_dir / CONFIG_FILE).exists():  # restarted with saved settings
        init_from = read_run_config(run_dir).get("init_from") or None
    data = prepare_data(project, config)
    if config.epochs > 0 and not resuming:
        per_epoch = data.steps_per_epoch()
        if per_epoch is None:
            raise TrainingError(f"method {config.method} cannot count epochs: give iterations instead")
        config.iterations = max(1, math.ceil(config.epochs * per_epoch))
    for text in data.messages:
        yield Message(text, "warning")
    torch.manual_seed(config.seed)
    method = entry.method_class()(config, data.run_info(), device, precision)
    try:
        copies = 1 if resuming else 3 if data.has_validation else 2  # last/, best/ and the one being written
        ensure_free_space(run_dir, copies * ckpt.checkpoint_bytes(method.networks, method.optimizers), "training")
        if resuming:
            start_step, best = _restore(plan.checkpoint, method)
        else:
            start_step, best = 0, None
            for report in method.reports:
                yield Message(report.message, "info" if report.source != "random" else "warning")
            if init_from is not None:
                source = Path(init_from) / (BEST if (Path(init_from) / BEST).exists() else LAST)
                ckpt.load_networks(source, method.networks)
                yield Message(f"warm start from {source}")
            extra = {"project": str(project.root), "device": str(device), "precision": precision}
            extra |= data.run_info() | {"init_from": str(init_from or "")}
            with writing("writing the run's config.json"):
                write_run_config(run_dir, config.to_dict(), data.roles(), extra)
        yield from _loop(config, run_dir, cancel, data, method, start_step, best)
    finally:
        # an error's traceback still holds `method`: drop its tensors explicitly so the GPU memory goes now
        method.close()
        del method
        release_memory(device)


def _restore(folder: Path, method: Method) -> tuple[int, BestCheckpoint | None]:
    """Load a checkpoint into ``method``; the step it reached and the best validation so far."""
    state = ckpt.read_state(folder)
    ckpt.load_networks(folder, method.networks)
    ckpt.load_optimizers(folder, method.optimizers)
    if "scaler" in state and method.scaler.is_enabled():  # fp16: go on with the loss scale reached
        method.scaler.load_state_dict(state["scaler"])
    return int(state["step"]), BestCheckpoint.from_dict(state.get("best"))


def _loop(
    config: TrainConfig,
    run_dir: Path,
    cancel: CancelToken,
    data: TrainingData,
    method: Method,
    step: int,
    best: BestCheckpoint | None,
) -> Iterator[Event]:
    def save(kind: str, at: int) -> Checkpoint:
        state = {
            "step": at,
            "best": best.to_dict() if best else None,
            "predict_with": best.network if best else method.default_output,
            "method": config.method,
            "task": config.task,
        }
        if method.scaler.is_enabled():
            state["scaler"] = method.scaler.state_dict()
        with writing("writing a checkpoint"):
            folder = ckpt.save_checkpoint(run_dir / kind, method.networks, method.optimizers, state)
        if kind == LAST:
            saved[0] = time.monotonic()
        return Checkpoint(folder, at, kind)

    saved = [time.monotonic()]  # when last/ was written (the time-based checkpoint counts from there)

    device = method.device
    batches = PrefetchedBatches(data.batch, config.iterations)  # the next batch is drawn while this one trains
    try:
        step_time, started = None, time.perf_counter()
        while step < config.iterations:
            if cancel.cancelled:
                yield save(LAST, step)
                yield Done(run_dir, step, cancelled=True, best=best)
                return
            tick = time.perf_counter()
            if method.refresh_due(step):  # e.g. PiCIE's clustering, once per epoch (base.Method)
                method.refresh(step, data.sample_batches(step, device))
            torch.manual_seed(config.seed * 1_000_003 + step)
            try:
                parts = method.train_step(step, data.to_device(batches.get(step), device))
            except Exception as exc:
                if is_out_of_memory(exc):
                    raise TrainingError(
                        f"out of memory at step {step} ({data.describe_batch()}): lower the batch or input size, "
                        f"or use --precision bf16; the last checkpoint in {run_dir / LAST} is kept"
                    ) from exc
                raise
            if not np.isfinite(parts["loss"]):
                raise TrainingError(
                    f"the loss became {parts['loss']} at step {step}: lower the learning rate (--lr) or check the "
                    f"labels; the last checkpoint in {run_dir / LAST} is kept"
                )
            step += 1
            elapsed = time.perf_counter() - tick
            step_time = elapsed if step_time is None else 0.9 * step_time + 0.1 * elapsed
            loss = parts.pop("loss")
            record = {"step": step, "loss": loss, **parts, "time": round(time.perf_counter() - started, 3)}
            yield Progress(
                step, config.iterations, loss, parts, parts.get("lr", 0.0), step_time * (config.iterations - step)
            )
            if data.has_validation and (step % config.val_every == 0 or step == config.iterations):
                result = method.evaluate(data.validation_batches(device))
                improved = best is None or result.score > best.score
                if improved:
                    best = BestCheckpoint(step, result.metric, result.score, result.network, result.metrics)
                record.update(result.metrics | result.details)
                yield Validation(step, result.metrics, result.metric, result.score, result.network, improved)
                if improved:
                    yield save(BEST, step)
            with writing("appending to the metrics log"):
                append_metrics(run_dir, record)
            overdue = 0 < config.checkpoint_every_s <= time.monotonic() - saved[0]
            if step % config.checkpoint_every == 0 or step == config.iterations or overdue:
                yield save(LAST, step)
        yield Done(run_dir, step, cancelled=False, best=best)
    finally:
        batches.close()


def load_run_config(run_dir: Path) -> TrainConfig:
    """The config a run was trained with (its method's config class)."""
    return config_from_dict(read_run_config(run_dir)["config"])
