"""Segmentation that starts from self-supervised encoders (``--init ssl RUN``).

``RUN`` holds a ``cass-seg`` pretraining (pretrained there first when it holds none). Its backbones are written
once as plain encoder files (``RUN/encoders/<network>.safetensors``, the ``backbone.encoder.`` prefix dropped), and
each network of the segmentation config whose encoder was pretrained gets that file as its ``weights``: the U-Net's
encoder loads the CNN's tensors by name, the Swin-UNet converts the Swin's like an ImageNet Swin (encoder, decoder
blocks mirrored). The segmentation run's config.json records the files, so a resumed or repeated run starts alike.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .atomic import atomic_target, atomic_write_text
from .cls_pipeline import pipeline_finished, relay
from .errors import InputError, S4MIError
from .events import CancelToken, Event, Stage
from .project import Project
from .registry import config_from_dict
from .runs import CONFIG_FILE, read_run_config
from .seg_config import SegConfig
from .seg_pretrain_config import SEG_PRETRAIN_METHOD, SegPretrainConfig, encoder_specs, pretraining_for, same_encoder

ENCODERS_DIR = "encoders"
PENDING_FILE = "then-train.json"  # in a pretraining folder: the segmentation run that follows it
BACKBONE = "backbone.encoder."  # ProjectedBackbone > PooledEncoder > the timm network


def read_pretraining(run_dir: Path) -> SegPretrainConfig:
    """The config of a finished ``cass-seg`` run; InputError (one line) for anything else."""
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG_FILE).is_file():
        raise InputError(f"{run_dir}: no pretraining run here (no {CONFIG_FILE})")
    config = _pretraining_config(run_dir)
    if not pipeline_finished(run_dir):
        raise InputError(f"{run_dir}: the pretraining has not finished; resume it first")
    return config


def _pretraining_config(run_dir: Path) -> SegPretrainConfig:
    """The saved config of the run in ``run_dir``; InputError unless it is a ``cass-seg`` run."""
    config = config_from_dict(read_run_config(run_dir)["config"])
    if not isinstance(config, SegPretrainConfig):
        raise InputError(f"{run_dir}: a {config.method} run; --init ssl needs a {SEG_PRETRAIN_METHOD} pretraining")
    return config


def encoder_files(run_dir: Path, names: Iterable[str]) -> dict[str, Path]:
    """The finished pretraining's backbones ``names`` as encoder files (written on first use), by network name."""
    from safetensors.torch import load_file, save

    from .methods.classifier import pretrained_file

    run_dir = Path(run_dir)
    files = {}
    for name in names:
        source = pretrained_file(run_dir, name)
        if source is None:
            raise InputError(f"{run_dir}: the pretraining saved no '{name}' network")
        target = run_dir / ENCODERS_DIR / f"{name}.safetensors"
        if not target.is_file() or target.stat().st_mtime < source.stat().st_mtime:
            state = {k[len(BACKBONE) :]: v for k, v in load_file(str(source)).items() if k.startswith(BACKBONE)}
            target.parent.mkdir(exist_ok=True)
            with atomic_target(target) as handle:
                handle.write(save(state))
        files[name] = target
    return files


def apply_ssl_init(config: SegConfig, run_dir: Path) -> list[str]:
    """Point each network of ``config`` at the encoder ``run_dir`` pretrained for it; the names set. InputError
    when a network's pretrained encoder is another one (encoder, width), or when none was pretrained."""
    pretrained = read_pretraining(run_dir).networks
    wanted = encoder_specs(config.networks)
    chosen = [name for name in wanted if name in pretrained]
    if not chosen or not all(same_encoder(pretrained[name], wanted[name]) for name in chosen):
        have = ", ".join(f"{n}: {_describe(s)}" for n, s in pretrained.items())
        need = ", ".join(f"{n}: {_describe(s)}" for n, s in wanted.items())
        raise InputError(f"{run_dir} pretrained {have}; this run needs {need}: pretrain again for these networks")
    files = encoder_files(run_dir, chosen)
    for name in chosen:
        config.networks[name]["weights"] = str(files[name])
    return chosen


def write_pending(ssl_run: Path, out: Path, config: SegConfig, pretraining: dict[str, Any] | None) -> None:
    """Note in ``ssl_run`` the segmentation run that follows its pretraining, so that a stopped job resumes both."""
    record = {"out": str(Path(out).resolve()), "config": config.to_dict(), "pretraining": dict(pretraining or {})}
    Path(ssl_run).mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(ssl_run) / PENDING_FILE, json.dumps(record, indent=2))


def read_pending(ssl_run: Path) -> tuple[Path, SegConfig, dict[str, Any]] | None:
    """The segmentation run still to follow the pretraining in ``ssl_run`` (out, config, pretraining settings);
    None when none was noted or it has begun (its folder holds a run)."""
    try:
        record = json.loads((Path(ssl_run) / PENDING_FILE).read_text())
        out, config = Path(record["out"]), config_from_dict(record["config"])
    except (OSError, ValueError, KeyError, TypeError, S4MIError):
        return None
    if (out / CONFIG_FILE).exists() or not isinstance(config, SegConfig):
        return None
    return out, config, dict(record.get("pretraining") or {})


def _describe(spec: dict) -> str:
    return str(spec.get("encoder") or f"Swin {spec.get('embed_dim')}")


def train_with_ssl_init(
    project: Project,
    config: SegConfig,
    out: Path,
    ssl_run: Path,
    cancel: CancelToken,
    pretraining: dict[str, Any] | None = None,
    restart: bool = False,
    pair: SegConfig | None = None,
    note_pending: bool = True,
) -> Iterator[Event]:
    """Pretrain both encoders in ``ssl_run`` (unless finished there), then train ``config`` from them into
    ``out``; each stage announced by a ``Stage`` event. ``pretraining``: settings of a new pretraining; ``pair``:
    the config whose two networks it pretrains (default ``config``'s, completed by cross-teaching's);
    ``note_pending``: note the segmentation run in ``ssl_run`` while it pretrains (``read_pending``)."""
    from .engine import train

    ssl_run = Path(ssl_run)
    if not pipeline_finished(ssl_run):
        again = (ssl_run / CONFIG_FILE).exists()
        pre = _pretraining_config(ssl_run) if again else pretraining_for(pair or config, **(pretraining or {}))
        if note_pending:
            write_pending(ssl_run, out, config, pretraining)
        yield Stage("pretraining", ssl_run, 1, 2)
        done = yield from relay(train(project, pre, ssl_run, cancel, resume=again, restart=restart))
        if done is None or done.cancelled or not pipeline_finished(ssl_run):
            return
    apply_ssl_init(config, ssl_run)
    yield Stage("segmentation", Path(out), 2, 2)
    yield from train(project, config, Path(out), cancel, restart=restart)
