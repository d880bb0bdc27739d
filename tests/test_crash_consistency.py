"""Crash consistency: `s4mi train seg` killed with SIGKILL at random moments, inside checkpoint writes and inside
mask imports, always leaves a project that opens and a run that starts again (fresh, resumed from its newest
complete checkpoint, or restarted from step 0); some of them are resumed to the end, logging each step once.

The trials run in tests/crash_driver.py, one process that imports torch once and forks a child per trial."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

DRIVER = Path(__file__).with_name("crash_driver.py")
STEPS = [1, 2, 3, 4, 5, 6]


def run_driver(work: Path, trials: int, resumes: int, seed: int, timeout: float) -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    done = subprocess.run(
        [
            sys.executable,
            str(DRIVER),
            str(work),
            "--trials",
            str(trials),
            "--resumes",
            str(resumes),
            "--seed",
            str(seed),
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def check_report(report: dict, trials: int, resumes: int) -> None:
    runs = report["trials"]
    assert len(runs) == trials
    for trial in runs:
        assert trial["killed"] or trial["code"] == 0, trial
        state = trial["state"]
        assert state in ("fresh", "restart") or state.startswith("resume@"), trial
        if trial["kind"] == "mask":  # the project opened (or was created again) and the import completed
            assert trial["project_check"]["annotated"] > 0, trial
    inside_checkpoint = [t for t in runs if t["inside_checkpoint"]]
    inside_import = [t for t in runs if t["kind"] == "mask" and t["killed"] and t["replaces"] > 0]
    assert len(inside_checkpoint) >= trials // 4, "too few kills landed inside a checkpoint write"
    assert len(inside_import) >= trials // 4, "too few kills landed inside a mask import"
    assert len(report["resumed"]) == resumes
    for resumed in report["resumed"]:
        assert resumed["code"] == 0, resumed["log"]
        assert resumed["steps"] == STEPS, resumed  # every step logged once, none repeated
        assert resumed["last_step"] == STEPS[-1]
    assert len({r["from"].split("@")[0] for r in report["resumed"]}) >= 2, "resumed runs should differ in state"


def test_sigkill_at_random_moments_leaves_runs_that_start_again(tmp_path):
    """24 kills (8 at random times, 8 inside checkpoint writes, 8 inside mask imports), 3 runs resumed to the end;
    about 2 minutes on two busy cores."""
    report = run_driver(tmp_path / "crash", trials=24, resumes=3, seed=0, timeout=600)
    check_report(report, trials=24, resumes=3)


@pytest.mark.slow
def test_sigkill_many_trials(tmp_path):
    """The long version: 90 kills, 8 resumed to the end."""
    report = run_driver(tmp_path / "crash", trials=90, resumes=8, seed=1, timeout=3600)
    check_report(report, trials=90, resumes=8)
