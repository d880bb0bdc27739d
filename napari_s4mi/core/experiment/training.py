"""How a run of the grid trains: its config from the preset and the experiment's settings, then the engine's events
(classification: its seed's CASS/DINO pretraining first, when not done; then fine-tuning from it). A run stopped
part-way resumes through the engine with its saved settings."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..config import TrainConfig
from ..errors import InputError
from ..events import CancelToken, Event, Stage
from ..project import Project
from ..registry import method_entry, method_names
from ..runs import CONFIG_FILE, summarize_run
from ..seg_config import CrossTeachingConfig
from ..seg_pretrain_config import SEG_PRETRAIN_METHOD
from .spec import ExperimentSpec, RunSpec, label_free, pretrains

RUNS_DIR = "runs"


def finished(run_dir: Path) -> bool:
    """Whether a run folder holds a complete checkpoint at its last step."""
    summary = summarize_run(run_dir)
    return summary is not None and summary.finished


def config_keys(config: type[TrainConfig] | TrainConfig) -> set[str]:
    """The settings a config takes: its fields and its networks' names."""
    instance = config() if isinstance(config, type) else config
    return {f.name for f in dataclasses.fields(instance)} | set(instance.networks)


def known_settings(config: type[TrainConfig], settings: dict[str, Any]) -> dict[str, Any]:
    """The ``settings`` a config class has; a length in iterations wins over a preset's epochs."""
    given = {k: v for k, v in settings.items() if k in config_keys(config)}
    if "iterations" in given and "epochs" in config_keys(config):
        given["epochs"] = 0.0
    return given


def check_settings(spec: ExperimentSpec) -> None:
    """InputError for a setting that no method of the grid has."""
    if spec.task == "classification":
        configs = [method_entry("classification", m).config for m in method_names("classification")]
        groups = [(spec.overrides, configs)]
        pre = [method_entry("pretraining", m).config for m in spec.methods if pretrains(spec.task, m)]
        groups.append((spec.pretrain_overrides, pre or configs))
    else:
        groups = [(spec.overrides, [method_entry(spec.task, m).config for m in spec.methods])]
    for settings, configs in groups:
        for key in settings:
            if not any(key in config_keys(c) for c in configs):
                raise InputError(f"training setting '{key}' unknown to every method of the grid")


def seg_config(spec: ExperimentSpec, run: RunSpec) -> TrainConfig:
    """The config of a segmentation run: the preset's, the settings the method has, its seed and fraction."""
    entry = method_entry(spec.task, run.method)
    config = entry.config.for_preset(spec.preset).override(**known_settings(entry.config, spec.overrides))
    config.seed = run.seed
    if not label_free(spec.task, run.method):  # a label-free config keeps its own (PiCIE: 0)
        config.label_fraction = run.fraction
    if spec.weights:
        config.set_weights(spec.weights)
    return config.validate()


def train_events(
    spec: ExperimentSpec, run: RunSpec, project: Project, out: Path, cancel: CancelToken
) -> Iterator[Event]:
    """The engine events of one run (classification: its seed's pretraining first, when not done)."""
    from ..cls_pipeline import plan_pipeline, run_pipeline
    from ..engine import load_run_config, train

    run_dir = out / RUNS_DIR / run.name
    if finished(run_dir):
        return
    resume = (run_dir / CONFIG_FILE).exists()
    if spec.task == "segmentation":
        if resume:
            yield from train(project, load_run_config(run_dir), run_dir, cancel, resume=True)
        elif spec.ssl_init(run):
            yield from _seg_from_ssl(spec, run, project, out, cancel)
        else:
            yield from train(project, seg_config(spec, run), run_dir, cancel)
        return
    finetune_class = method_entry("classification", method_names("classification")[0]).config
    finetune = known_settings(finetune_class, spec.overrides) | {"label_fraction": run.fraction, "seed": run.seed}
    pre_dir = out / RUNS_DIR / spec.unit(run) if pretrains(spec.task, run.method) else None
    if pre_dir is not None and not finished(pre_dir):
        again = (pre_dir / CONFIG_FILE).exists()
        pre_class = method_entry("pretraining", run.method).config
        pre_settings = known_settings(pre_class, spec.pretrain_overrides)
        if again:
            config = load_run_config(pre_dir)
        else:
            config = plan_pipeline(run.method, spec.preset, finetune, pre_settings).pretraining
            if spec.weights:
                config.set_weights(spec.weights)
        yield Stage("pretraining", pre_dir, 1, 2)
        yield from train(project, config, pre_dir, cancel, resume=again)
        if not finished(pre_dir):
            return
    pipeline = plan_pipeline(run.method, spec.preset, finetune, pretrain_from=pre_dir)
    if spec.weights:
        pipeline.finetune.set_weights(spec.weights)
        if pre_dir is None and spec.weights in ("imagenet", "none", "random"):
            pipeline.finetune.init = spec.weights
    yield from run_pipeline(project, pipeline, run_dir, cancel, resume=resume)


def _seg_from_ssl(
    spec: ExperimentSpec, run: RunSpec, project: Project, out: Path, cancel: CancelToken
) -> Iterator[Event]:
    """A segmentation run that starts from its seed's ``cass-seg`` pretraining (run first when not finished)."""
    from ..ssl_init import train_with_ssl_init

    config = seg_config(spec, run)
    pair = seg_config(spec, dataclasses.replace(run, method=CrossTeachingConfig.method))  # both networks, as set
    pre_dir = out / RUNS_DIR / str(spec.pretraining_dir(run))
    pretraining = known_settings(method_entry("pretraining", SEG_PRETRAIN_METHOD).config, spec.pretrain_overrides)
    run_dir = out / RUNS_DIR / run.name
    yield from train_with_ssl_init(
        project, config, run_dir, pre_dir, cancel, pretraining, pair=pair, note_pending=False
    )
