"""Run folders: config, seed, versions and data list hash, metrics log, checkpoints."""

from __future__ import annotations

import hashlib
import json
import platform
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from .atomic import atomic_write_text
from .errors import InputError, S4MIError

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
PACKAGES = (
    "napari-s4mi",
    "torch",
    "timm",
    "segmentation-models-pytorch",
    "numpy",
    "tifffile",
    "scikit-image",
)


def package_versions() -> dict[str, str]:
    """Versions of Python and the packages that shape a run's numbers."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def data_hash(roles: dict[str, list[str]]) -> str:
    """A stable hash of which slides played which role (labeled, unlabeled, val)."""
    text = json.dumps({k: sorted(v) for k, v in sorted(roles.items())}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def write_run_config(run_dir: Path, config: dict[str, Any], roles: dict[str, list[str]], extra: dict) -> None:
    """Write config.json: the settings, seed, versions, and the data list with its hash."""
    record = {
        "config": config,
        "seed": config.get("seed"),
        "versions": package_versions(),
        "data_hash": data_hash(roles),
        "data": {k: sorted(v) for k, v in roles.items()},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        **extra,
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / CONFIG_FILE, json.dumps(record, indent=2))


def read_run_config(run_dir: Path) -> dict[str, Any]:
    """The config.json of a run; InputError when the folder is no s4mi run."""
    path = Path(run_dir) / CONFIG_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(
            f"{path}: not an s4mi run folder ({exc.__class__.__name__}); pass the --out of a training"
        ) from exc


def append_metrics(run_dir: Path, record: dict[str, Any]) -> None:
    """Append one JSON line to metrics.jsonl."""
    with open(Path(run_dir) / METRICS_FILE, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The records of metrics.jsonl; a line torn by a crash is left out."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


@dataclass(frozen=True)
class RunSummary:
    """What a run folder holds, read from JSON only (no torch): for run pickers and resume buttons."""

    path: Path
    method: str
    step: int
    iterations: int
    has_best: bool
    has_last: bool
    outputs: tuple[str, ...] = ()  # what prediction can use (networks, their mean)
    task: str = "segmentation"
    pretrained_by: str = ""  # the method of the pretraining a fine-tuning started from

    @property
    def finished(self) -> bool:
        return self.step >= self.iterations

    @property
    def label(self) -> str:
        state = "done" if self.finished else f"stopped at {self.step}"
        return f"{self.path.name} · {self.method_text} · {state}/{self.iterations}"

    @property
    def method_text(self) -> str:
        """The method, and for a fine-tuning from a pretraining, that pretraining's method."""
        return f"{self.pretrained_by} → {self.method}" if self.pretrained_by else self.method


def summarize_run(run_dir: Path) -> RunSummary | None:
    """The summary of a run folder, or None when it has no config or no complete checkpoint yet."""
    run_dir = Path(run_dir)
    try:
        config = json.loads((run_dir / CONFIG_FILE).read_text()).get("config", {})
        state = json.loads((run_dir / "last" / "state.json").read_text())
    except (OSError, ValueError):
        return None
    return RunSummary(
        run_dir,
        str(config.get("method", "?")),
        int(state.get("step", 0)),
        int(config.get("iterations", 0)),
        (run_dir / "best" / "state.json").is_file(),
        True,
        _outputs(config),
        str(config.get("task") or "segmentation"),
        _pretrained_by(config),
    )


def _pretrained_by(config: dict[str, Any]) -> str:
    """The method of the pretraining run a fine-tuning was initialised from ('' for ImageNet or random)."""
    init = str(config.get("init") or "")
    if init in ("", "imagenet", "none", "random"):
        return ""
    try:
        return str(json.loads((Path(init) / CONFIG_FILE).read_text())["config"].get("method", "pretraining"))
    except (OSError, ValueError, KeyError):
        return "pretraining"


def _outputs(config: dict[str, Any]) -> tuple[str, ...]:
    """The outputs a saved config offers for prediction (none for a method this version does not know)."""
    from .registry import config_from_dict

    try:
        return tuple(getattr(config_from_dict(config), "outputs", ()))
    except (S4MIError, TypeError, ValueError):
        return ()


def list_runs(runs_dir: Path) -> list[RunSummary]:
    """Runs with a checkpoint under ``runs_dir``, newest first."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    found = [summarize_run(p) for p in runs_dir.iterdir() if p.is_dir()]
    return sorted((r for r in found if r is not None), key=lambda r: (r.path / "last").stat().st_mtime, reverse=True)
