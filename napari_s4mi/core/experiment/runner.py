"""Running an experiment's grid: each run trained (or resumed), scored on the test split, marked done.

``run_experiment`` is a generator of :class:`GridEvent` (each wraps the engine event of the run in progress) and a
final :class:`GridDone`. A run is done when ``runs/<name>/result.json`` exists: it is written atomically after the
test evaluation, and a re-run skips such runs. A run stopped part-way (Ctrl-C, a crash, a closed generator) is
resumed from its newest complete checkpoint by the engine; one whose training finished is only evaluated. So an
interruption loses at most the run in progress since its last checkpoint. A run that fails with a one-line error
(a NaN loss, out of memory) is noted in its ``failed.json`` and the grid goes on; the next invocation tries it
again. A full or read-only disk stops the grid. Classification's CASS and DINO
pretrain once per seed (``runs/pretrain-<method>-seed<k>``, training-split images only), shared by that seed's
fractions: the seeds' spread then includes the pretraining's. The report is rewritten after every run.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text
from ..errors import InputError, OutputError, S4MIError
from ..events import CancelToken, Event, Progress, Stage
from ..project import Project
from ..runs import CONFIG_FILE, package_versions, read_run_config
from . import training
from .prepare import DataSource, prepare_projects, project_name
from .spec import ExperimentSpec, RunSpec, label_free, select
from .training import RUNS_DIR, check_settings, finished

EXPERIMENT_FILE = "experiment.json"
RESULT_FILE = "result.json"
FAILED_FILE = "failed.json"


@dataclass(frozen=True)
class GridEvent:
    """Something happened to run ``index`` of ``total``: kind 'start', 'skip' (done already), 'train' (``event``
    is the engine's), 'evaluate' (testing begins), 'done' (``result`` is its record) or 'failed' (``error``)."""

    index: int
    total: int
    run: RunSpec
    kind: str
    event: Event | None = None
    result: dict[str, Any] | None = None
    stage: str = ""
    error: str = ""

    def describe(self) -> str:
        """E.g. 'run 4/21: cross-teaching 10% seed 1 — step 120/400'."""
        head = f"run {self.index}/{self.total}: {self.run.label}"
        if isinstance(self.event, Progress):
            stage = f"{self.stage} " if self.stage else ""
            return f"{head} — {stage}step {self.event.step}/{self.event.total}"
        if self.kind == "failed":
            return f"{head} — failed: {self.error}"
        return {"skip": f"{head} — done already", "evaluate": f"{head} — testing"}.get(self.kind, head)


@dataclass(frozen=True)
class GridDone:
    """The invocation ended: runs trained, skipped and failed, whether it was stopped, the report files written."""

    out: Path
    trained: int
    skipped: int
    stopped: bool
    written: tuple[Path, ...] = ()
    failed: int = 0


def clean(value: Any) -> Any:
    """JSON-safe: NaN and infinities as None, tuples as lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value


def read_result(run_dir: Path) -> dict[str, Any] | None:
    """A run's result.json, or None while the run is not done."""
    try:
        return json.loads((Path(run_dir) / RESULT_FILE).read_text())
    except (OSError, ValueError):
        return None


def open_experiment(spec: ExperimentSpec, out: Path, source: DataSource | None) -> dict[str, Any]:
    """Prepare (or check) the experiment in ``out``: its projects and ``experiment.json``."""
    out = Path(out)
    path = out / EXPERIMENT_FILE
    stored = json.loads(path.read_text()) if path.is_file() else None
    settings = clean(spec.settings())
    if stored is not None and stored.get("settings") != settings:
        old = stored.get("settings", {})
        key = next((k for k in settings if old.get(k) != settings[k]), "settings")
        raise InputError(
            f"{out}: holds an experiment with other {key} ({json.dumps(old.get(key))} now "
            f"{json.dumps(settings[key])}); re-run with its settings or pick a new --out"
        )
    if stored is None and source is None:
        raise InputError(f"{out}: no experiment yet; give the data (--images with --masks or --labels, or --project)")
    data = source.describe() if source is not None else stored.get("source")
    before = stored.get("source") if stored else None
    if before is not None and data != before:
        key = next(k for k in data if data[k] != before.get(k))
        raise InputError(f"{out}: holds an experiment on other data ({key} {before.get(key)}); pick a new --out")
    projects = prepare_projects(source or DataSource(), spec.task, spec.split, spec.seeds, out)
    known = dict(stored.get("projects", {})) if stored else {}
    for name, info in projects.items():
        if name in known and known[name]["data_hash"] != info["data_hash"]:
            raise InputError(f"{out / name}: its data changed since the experiment began (data hash); use a new --out")
        known[name] = info
    record = {"format": "s4mi-experiment", "version": 1, "settings": settings, "source": data, "projects": known}
    record["created"] = stored.get("created") if stored else time.strftime("%Y-%m-%dT%H:%M:%S")
    record["versions"] = package_versions()
    atomic_write_text(path, json.dumps(record, indent=2))
    return record


def run_experiment(
    spec: ExperimentSpec,
    out: Path,
    source: DataSource | None = None,
    cancel: CancelToken | None = None,
    only: tuple[str, ...] = (),
    part: tuple[int, int] | None = None,
) -> Iterator[GridEvent | GridDone]:
    """Run the selected runs of the grid in ``out`` (see the module docstring); yields their events."""
    from .report import write_report

    spec, out, cancel = spec.resolved(), Path(out), cancel or CancelToken()
    check_settings(spec)
    runs = select(spec, only, part)
    record = open_experiment(spec, out, source)
    trained = skipped = failed = 0
    for index, run in enumerate(runs, 1):
        run_dir = out / RUNS_DIR / run.name
        if cancel.cancelled:
            break
        if read_result(run_dir) is not None:
            skipped += 1
            yield GridEvent(index, len(runs), run, "skip")
            continue
        yield GridEvent(index, len(runs), run, "start")
        try:
            result = yield from _run_one(spec, run, out, cancel, index, len(runs))
        except OutputError:  # a full or read-only disk stops every run alike
            raise
        except S4MIError as exc:  # this run cannot go on (e.g. a NaN loss): noted, the grid goes on
            failed += 1
            run_dir.mkdir(parents=True, exist_ok=True)
            note = {"name": run.name, "error": str(exc), "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
            atomic_write_text(run_dir / FAILED_FILE, json.dumps(note, indent=1))
            yield GridEvent(index, len(runs), run, "failed", error=str(exc))
            continue
        if result is None:  # stopped: the checkpoint is kept for the next invocation
            yield GridDone(out, trained, skipped, True, tuple(write_report(out)), failed)
            return
        result["data_hash"] = record["projects"][project_name(spec.split, run.seed)]["data_hash"]
        atomic_write_text(run_dir / RESULT_FILE, json.dumps(clean(result), indent=1))
        with contextlib.suppress(FileNotFoundError):
            (run_dir / FAILED_FILE).unlink()
        trained += 1
        yield GridEvent(index, len(runs), run, "done", result=result)
        write_report(out)
    yield GridDone(out, trained, skipped, cancel.cancelled, tuple(write_report(out)), failed)


def _run_one(spec: ExperimentSpec, run: RunSpec, out: Path, cancel: CancelToken, index: int, total: int):
    """Train (or resume) and test one run, yielding its events; returns its result, None when stopped."""
    run_dir = out / RUNS_DIR / run.name
    project = Project.open(out / project_name(spec.split, run.seed), refresh=False)
    resumed = (run_dir / CONFIG_FILE).exists()
    seconds: dict[str, float] = {}
    stage, tick = "", time.perf_counter()
    for event in training.train_events(spec, run, project, out, cancel):
        if isinstance(event, Stage):
            seconds[stage or "train"] = seconds.get(stage or "train", 0.0) + time.perf_counter() - tick
            stage, tick = event.name, time.perf_counter()
        yield GridEvent(index, total, run, "train", event=event, stage=stage)
    seconds[stage or "train"] = seconds.get(stage or "train", 0.0) + time.perf_counter() - tick
    if not finished(run_dir):
        return None
    yield GridEvent(index, total, run, "evaluate")
    tick = time.perf_counter()
    result = _evaluate(spec, run, project, run_dir, out)
    seconds["evaluate"] = time.perf_counter() - tick
    return result | {"seconds": {k: round(v, 1) for k, v in seconds.items() if v > 0.05}, "resumed": resumed}


def _evaluate(spec: ExperimentSpec, run: RunSpec, project: Project, run_dir: Path, out: Path) -> dict[str, Any]:
    from .evaluate import HEADLINE, evaluate_run

    record = read_run_config(run_dir)
    scores = evaluate_run(project, spec.task, run_dir, str(spec.overrides.get("device") or "auto"))
    pre_name = spec.pretraining_dir(run)
    pre_dir = out / RUNS_DIR / pre_name if pre_name else None
    pretraining = {"run": pre_name, "config": read_run_config(pre_dir)["config"]} if pre_dir else None
    return {
        "name": run.name,
        "method": run.method,
        "task": spec.task,
        "fraction": run.fraction,
        "seed": run.seed,
        "label_free": label_free(spec.task, run.method),
        "headline": HEADLINE[spec.task],
        **scores,
        "labeled_slides": len(record.get("data", {}).get("labeled", [])),
        "versions": package_versions(),
        "run_data_hash": record.get("data_hash"),
        "config": record["config"],
        "pretraining": pretraining,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
