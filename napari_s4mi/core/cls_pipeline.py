"""Classification from few labels as one job: self-supervised pretraining on the slides, then fine-tuning.

A pretraining method (CASS, DINO) runs in ``<out>/pretrain``, then the fine-tuning run in ``<out>`` itself starts
from its backbones (same network names); a classification method (supervised) is the fine-tuning alone, from
ImageNet weights. ``pretrain_from`` reuses a finished pretraining. Events of both runs are yielded in order, each
run announced by a ``Stage`` event; cancelling stops the stage in flight with a valid checkpoint, and resuming
continues where the job stopped (a finished pretraining is not repeated).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .atomic import atomic_write_text
from .cls_config import FinetuneConfig, ImageConfig
from .errors import InputError, S4MIError
from .events import CancelToken, Done, Event, Stage
from .project import Project
from .registry import config_from_dict, make_config, method_names, pretraining_methods
from .runs import CONFIG_FILE, read_run_config

PRETRAIN_DIR = "pretrain"
PIPELINE_FILE = "pipeline.json"
SHARED = ("seed", "device", "precision", "input_size", "batch", "red_norm", "val_fraction", "cuda_graphs")


@dataclass
class ClsPipeline:
    """The runs of a classification job: an optional pretraining, then fine-tuning."""

    finetune: FinetuneConfig
    pretraining: ImageConfig | None = None
    pretrain_from: Path | None = None

    @property
    def stages(self) -> int:
        return 2 if self.pretraining is not None else 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "finetune": self.finetune.to_dict(),
            "pretraining": self.pretraining.to_dict() if self.pretraining is not None else None,
            "pretrain_from": str(self.pretrain_from) if self.pretrain_from else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClsPipeline:
        pre = data.get("pretraining")
        return cls(
            config_from_dict(data["finetune"]),
            config_from_dict(pre) if pre else None,
            Path(data["pretrain_from"]) if data.get("pretrain_from") else None,
        )


def read_pipeline(out: Path) -> ClsPipeline | None:
    """The job a pipeline folder was started with (None when ``out`` holds no pipeline)."""
    try:
        return ClsPipeline.from_dict(json.loads((Path(out) / PIPELINE_FILE).read_text()))
    except (OSError, ValueError, KeyError, S4MIError):
        return None


def pipeline_finished(out: Path) -> bool:
    """Whether the job in ``out`` ran its last stage to the end."""
    return _finished(Path(out))


def pipeline_methods() -> tuple[str, ...]:
    """What ``--method`` offers: the pretraining methods (followed by fine-tuning), then the direct ones."""
    return pretraining_methods() + method_names("classification")


def plan_pipeline(
    method: str,
    preset: str = "cpu-small",
    finetune: dict[str, Any] | None = None,
    pretraining: dict[str, Any] | None = None,
    pretrain_from: Path | None = None,
) -> ClsPipeline:
    """The configs of a job: ``finetune`` / ``pretraining`` override their run's settings (None ignored); the
    shared settings (seed, device, ...) given for fine-tuning apply to the pretraining too."""
    finetune = dict(finetune or {})
    shared = {k: finetune.get(k) for k in SHARED}
    pre: ImageConfig | None = None
    if pretrain_from is not None:
        pre_networks = _pretrained_networks(Path(pretrain_from))
    elif method in pretraining_methods():
        pre = make_config("pretraining", method, preset, **(shared | dict(pretraining or {})))
        pre_networks = pre.networks
    else:
        pre_networks = None
    config = make_config("classification", next(iter(method_names("classification"))), preset, **finetune)
    if pre_networks is not None:  # fine-tune exactly the networks that were pretrained
        config.networks = {name: dict(spec) for name, spec in pre_networks.items()}
    elif method not in method_names("classification"):
        raise InputError(f"method '{method}' unknown: use one of {', '.join(pipeline_methods())}")
    return ClsPipeline(config, pre, Path(pretrain_from) if pretrain_from else None)


def _pretrained_networks(run_dir: Path) -> dict[str, dict[str, Any]]:
    record = read_run_config(run_dir)
    config = config_from_dict(record["config"])
    if config.task != "pretraining":
        raise InputError(f"{run_dir}: a {config.task} run, not a pretraining; pass a CASS or DINO run's folder")
    return config.networks


def _finished(run_dir: Path) -> bool:
    try:
        state = json.loads((run_dir / "last" / "state.json").read_text())
        config = json.loads((run_dir / CONFIG_FILE).read_text())["config"]
    except (OSError, ValueError, KeyError):
        return False
    return int(state.get("step", 0)) >= int(config.get("iterations", 0))


def run_pipeline(
    project: Project,
    pipeline: ClsPipeline,
    out: Path,
    cancel: CancelToken | None = None,
    resume: bool = False,
    restart: bool = False,
) -> Iterator[Event]:
    """Pretrain (unless reused or done), then fine-tune into ``out``; yields both runs' events. ``restart``
    starts a stage over that holds no complete checkpoint (see ``engine.train``)."""
    from .engine import train

    out = Path(out)
    cancel = cancel or CancelToken()
    if not resume or not (out / PIPELINE_FILE).exists():
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / PIPELINE_FILE, json.dumps(pipeline.to_dict(), indent=2))
    init = pipeline.pretrain_from
    if pipeline.pretraining is not None:
        pre_dir = out / PRETRAIN_DIR
        init = pre_dir
        if not _finished(pre_dir):
            yield Stage("pretraining", pre_dir, 1, pipeline.stages)
            again = resume and (pre_dir / CONFIG_FILE).exists()
            config = config_from_dict(read_run_config(pre_dir)["config"]) if again else pipeline.pretraining
            done = yield from relay(train(project, config, pre_dir, cancel, resume=again, restart=restart))
            if done is None or done.cancelled:
                return
    yield Stage("fine-tuning", out, pipeline.stages, pipeline.stages)
    again = resume and (out / CONFIG_FILE).exists()
    config = config_from_dict(read_run_config(out)["config"]) if again else pipeline.finetune
    if not again and init is not None:
        config.init = str(init)
    yield from relay(train(project, config, out, cancel, resume=again, restart=restart))


def relay(events: Iterator[Event]) -> Iterator[Event]:
    """Pass the events on; returns the run's Done event."""
    done = None
    for event in events:
        if isinstance(event, Done):
            done = event
        yield event
    return done
