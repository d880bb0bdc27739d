"""How a run folder starts: fresh, resumed from its newest complete checkpoint, or restarted from step 0.

A run killed at any moment (``kill -9``, a full disk, a power cut) leaves a folder this module can start again:
a checkpoint torn by the crash is put back from its staged or set-aside copy (``checkpoint.recover``) or passed
over for the other one (``last/`` or ``best/``, the newest complete wins); with none complete the run restarts
from step 0 with its saved settings. Resuming cuts ``metrics.jsonl`` back to the checkpoint's step, so no step is
logged twice. Call :func:`plan_start` while holding the run's lock (``run_lock.RunLock``).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path

from . import checkpoint as ckpt
from .atomic import atomic_write_text
from .errors import InputError
from .runs import CONFIG_FILE, METRICS_FILE

LAST, BEST = "last", "best"


@dataclass(frozen=True)
class StartPlan:
    """Where a run starts: ``checkpoint`` to resume from (None: step 0), its step, and a line saying which."""

    checkpoint: Path | None = None
    step: int = 0
    message: str | None = None


def newest_checkpoint(run_dir: Path) -> tuple[Path, int] | None:
    """The newest complete checkpoint of a run (``last/`` on a tie) and its step, after recovering torn ones."""
    found = []
    for kind in (LAST, BEST):
        folder = Path(run_dir) / kind
        if ckpt.recover(folder):
            found.append((folder, int(ckpt.read_state(folder)["step"])))
    return max(found, key=lambda item: item[1]) if found else None


def plan_start(run_dir: Path, resume: bool, restart: bool, iterations: int) -> StartPlan:
    """Decide (and prepare the folder for) a start of the run in ``run_dir``; InputError when it must not start."""
    run_dir = Path(run_dir)
    name = run_dir.name
    if not (run_dir / CONFIG_FILE).exists():
        if resume:
            raise InputError(
                f"{run_dir}: holds no run to resume (it stopped before it began); start it without --resume"
            )
        clear_run(run_dir)
        return StartPlan()
    newest = newest_checkpoint(run_dir)
    why = ckpt.checkpoint_problem(run_dir / LAST)
    if newest is not None and (restart or not resume):
        folder, step = newest
        raise InputError(
            f"{run_dir}: already holds a run with a complete checkpoint at step {step}; resume it (--resume) or "
            "pick a new --out"
        )
    if restart:
        clear_run(run_dir)
        return StartPlan(message=f"restarting {name} from step 0: it held no complete checkpoint ({why})")
    if not resume:
        raise InputError(
            f"{run_dir}: already holds a run that stopped before its first complete checkpoint; start it over "
            "(--restart), resume it (--resume: from step 0 with its saved settings), or pick a new --out"
        )
    if newest is None:
        clear_run(run_dir, keep_config=True)
        return StartPlan(
            message=f"{name} holds no complete checkpoint ({why}): restarting it from step 0 with its saved settings"
        )
    folder, step = newest
    truncate_metrics(run_dir, step)
    source = "its last checkpoint" if folder.name == LAST else f"best/ ({why})"
    return StartPlan(folder, step, f"resuming {name} at step {step} of {iterations} from {source}")


def clear_run(run_dir: Path, keep_config: bool = False) -> None:
    """Remove what a run writes (checkpoints, metrics log and, unless kept, config.json); nothing else."""
    run_dir = Path(run_dir)
    for kind in (LAST, BEST):
        ckpt.discard(run_dir / kind)
    names = [METRICS_FILE] if keep_config else [METRICS_FILE, CONFIG_FILE]
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            (run_dir / name).unlink()


def truncate_metrics(run_dir: Path, step: int) -> None:
    """Keep the metrics log's records up to ``step`` (and drop a line torn by a crash); rewritten atomically."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            if int(json.loads(line).get("step", 0)) <= step:
                kept.append(line)
    atomic_write_text(path, "".join(f"{line}\n" for line in kept))
