"""Crash-consistency driver (run by tests/test_crash_consistency.py in a process of its own): `s4mi train seg` in
forked children killed with SIGKILL at random moments, during checkpoint writes and during mask imports; after
each kill the project must open and the run must resume or restart. Prints one JSON report on stdout.

torch and the plugin are imported once here and never run here, so each fork starts training in well under a
second (a fresh interpreter would spend several seconds importing torch per trial).

    python tests/crash_driver.py WORKDIR --trials 24 --resumes 4 --seed 0
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import select
import shutil
import signal
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from conftest import SAMPLE, TINY_CNN, TINY_SWIN  # noqa: E402

import napari_s4mi.core.seg_config as seg_config  # noqa: E402
from napari_s4mi.cli import main  # noqa: E402
from napari_s4mi.core import checkpoint as ckpt  # noqa: E402
from napari_s4mi.core.project import Project  # noqa: E402
from napari_s4mi.core.run_state import newest_checkpoint  # noqa: E402
from napari_s4mi.core.runs import CONFIG_FILE, read_metrics  # noqa: E402

ITERATIONS = 6
TINY = "--iterations 6 --input-size 64 --labeled-batch 2 --unlabeled-batch 2 --device cpu --precision fp32"
TINY_ARGS = [*TINY.split(), "--weights", "none", "--val-every", "3"]
CHECKPOINT_START, CHECKPOINT_END, REPLACE = b"c", b"C", b"r"


# ------------------------------------------------------------------------------------------- the child
def _tiny_networks() -> None:
    """The cpu-small preset with the test's tiny networks, a checkpoint every 2 steps."""
    import napari_s4mi.core.registry as registry

    seg_config.unet_spec = lambda encoder: dict(TINY_CNN)
    seg_config.swin_spec = lambda embed_dim, heads: dict(TINY_SWIN)
    make = registry.make_config

    def make_config(*args, **kwargs):
        return make(*args, **kwargs).override(checkpoint_every=2)

    registry.make_config = make_config


def _slow_writes(signal_fd: int, rng: random.Random) -> None:
    """Widen the crash windows: each checkpoint file is written in two halves with a pause between, renames and
    atomic replaces pause first; each tells the parent through ``signal_fd`` (c: a checkpoint starts, C: ends,
    r: an atomic replace is about to happen)."""
    from pathlib import Path as _Path

    from safetensors.torch import save

    def save_file(tensors, filename, metadata=None):
        data = save(tensors, metadata=metadata)
        with open(filename, "wb") as fh:
            fh.write(data[: len(data) // 2])
            fh.flush()
            time.sleep(rng.uniform(0.0, 0.03))
            fh.write(data[len(data) // 2 :])

    real_save = ckpt.save_checkpoint

    def save_checkpoint(*args, **kwargs):
        os.write(signal_fd, CHECKPOINT_START)
        folder = real_save(*args, **kwargs)
        os.write(signal_fd, CHECKPOINT_END)
        return folder

    real_rename, real_replace = _Path.rename, os.replace

    def rename(self, target):
        time.sleep(rng.uniform(0.0, 0.01))
        return real_rename(self, target)

    def replace(src, dst, **kwargs):
        os.write(signal_fd, REPLACE)
        time.sleep(rng.uniform(0.0, 0.01))
        return real_replace(src, dst, **kwargs)

    ckpt.save_file = save_file
    ckpt.save_checkpoint = save_checkpoint  # the engine calls it through the module
    _Path.rename = rename
    os.replace = replace


def _child(argv: list[str], log: Path, signal_fd: int, seed: int) -> None:
    """Run ``s4mi`` in this forked process and exit with its code (never returns)."""
    code = 70
    try:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        _slow_writes(signal_fd, random.Random(seed))
        torch.set_num_threads(1)  # two busy cores: more threads spin against each other (measured 15x slower)
        code = main(argv)
    except BaseException as exc:  # noqa: BLE001 - report anything, exit
        print(f"child crashed: {exc!r}", file=sys.stderr)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


# ------------------------------------------------------------------------------------------ the parent
def run_child(argv: list[str], log: Path, seed: int, kill: dict | None = None) -> dict:
    """Fork a child running ``argv``; ``kill``: {"after_s": t} or {"event": b"c", "count": n, "delay_s": d}."""
    read_fd, write_fd = os.pipe()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        _child(argv, log, write_fd, seed)
    os.close(write_fd)
    seen = {CHECKPOINT_START: 0, CHECKPOINT_END: 0, REPLACE: 0}
    inside = was_inside = False  # a checkpoint write in flight (when the kill went out)
    killed_at = None
    deadline = started + kill["after_s"] if kill and "after_s" in kill else None
    status = None
    while status is None:
        timeout = 0.05 if deadline is None else max(0.0, min(0.05, deadline - time.monotonic()))
        ready, _, _ = select.select([read_fd], [], [], timeout)
        if ready:
            for byte in os.read(read_fd, 4096):
                tag = bytes([byte])
                seen[tag] += 1
                inside = seen[CHECKPOINT_START] > seen[CHECKPOINT_END]
                if kill and kill.get("event") == tag and seen[tag] == kill["count"] and deadline is None:
                    deadline = time.monotonic() + kill["delay_s"]
        if deadline is not None and killed_at is None and time.monotonic() >= deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            killed_at = time.monotonic() - started
            was_inside = inside
        done, raw = os.waitpid(pid, os.WNOHANG)
        if done:
            status = raw
    with contextlib.suppress(OSError):  # what the child wrote just before it died
        while chunk := os.read(read_fd, 4096):
            for byte in chunk:
                seen[bytes([byte])] += 1
    os.close(read_fd)
    signalled = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    return {
        "code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
        "killed": signalled,
        "killed_at_s": round(killed_at, 3) if killed_at is not None else None,
        "inside_checkpoint": bool(signalled and killed_at is not None and was_inside),
        "checkpoints_started": seen[CHECKPOINT_START],
        "replaces": seen[REPLACE],
        "seconds": round(time.monotonic() - started, 3),
    }


def run_state(run_dir: Path) -> str:
    """What starting the run again will do: fresh, resume@N or restart (checks the folder, reads no tensors)."""
    if not (run_dir / CONFIG_FILE).exists():
        return "fresh"
    read_metrics(run_dir)  # never raises on a torn line
    newest = newest_checkpoint(run_dir)
    if newest is None:
        return "restart"
    folder, step = newest
    assert ckpt.checkpoint_problem(folder) is None
    return f"resume@{step}"


def check_project(images: Path, masks: Path) -> dict:
    """The project opens (or, killed before its manifest existed, is created again), and the import the killed
    command ran completes when run again."""
    root = images / ".s4mi"
    opened = Project.is_project(root)
    if opened:
        Project.open(root)
    project = Project.create(images)
    project.import_masks(masks)
    return {"manifest_existed": opened, "annotated": len(project.annotated_ids())}


def resume_args(project: Path, run_dir: Path) -> list[str]:
    again = ["--resume"] if (run_dir / CONFIG_FILE).exists() else []
    return ["train", "seg", "--project", str(project), "--out", str(run_dir), *again, *TINY_ARGS]


def main_driver() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("work", type=Path)
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--resumes", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    _tiny_networks()
    rng = random.Random(args.seed)
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    logs = work / "logs"
    logs.mkdir(exist_ok=True)

    # a project with its masks, and one uninterrupted run to time a run
    shutil.copytree(SAMPLE / "images", work / "images")
    project = Project.create(work / "images")
    project.import_masks(SAMPLE / "masks")
    started = time.monotonic()
    base = run_child(["train", "seg", "--project", str(project.root), "--out", str(work / "straight"), *TINY_ARGS],
                     logs / "straight.log", 0)  # fmt: skip
    run_s = time.monotonic() - started
    assert base["code"] == 0, (logs / "straight.log").read_text()[-2000:]

    trials = []
    kinds = ["random", "checkpoint", "mask"]
    for index in range(args.trials):
        kind = kinds[index % len(kinds)]
        seed = rng.randrange(1 << 30)
        log = logs / f"trial{index}.log"
        if kind == "mask":  # a fresh slide folder: the command creates the project and imports the masks
            images = work / f"mask{index}" / "images"
            shutil.copytree(SAMPLE / "images", images)
            argv = ["train", "seg", "--images", str(images), "--masks", str(SAMPLE / "masks"),
                    "--out", str(images.parent / "run"), *TINY_ARGS]  # fmt: skip
            kill = {"event": REPLACE, "count": rng.randint(1, 9), "delay_s": rng.uniform(0.0, 0.012)}
            run_dir, root = images.parent / "run", images / ".s4mi"
        else:
            run_dir, root = work / "runs" / f"trial{index}", project.root
            argv = ["train", "seg", "--project", str(root), "--out", str(run_dir), *TINY_ARGS]
            if kind == "checkpoint":
                kill = {"event": CHECKPOINT_START, "count": rng.randint(1, 4), "delay_s": rng.uniform(0.0, 0.06)}
            else:
                kill = {"after_s": rng.uniform(0.0, run_s)}
        result = run_child(argv, log, seed, kill)
        result |= {"trial": index, "kind": kind, "run_dir": str(run_dir), "project": str(root)}
        if kind == "mask":
            result["project_check"] = check_project(images, SAMPLE / "masks")
        else:
            Project.open(root)
        result["state"] = run_state(run_dir)
        trials.append(result)

    # resume (or restart, or start) some of the killed runs to the end: one of each state first
    chosen: list[dict] = []
    killed = [t for t in trials if t["killed"]]
    rng.shuffle(killed)
    for trial in sorted(killed, key=lambda t: t["kind"] == "mask"):
        key = trial["state"].split("@")[0]
        if len(chosen) < args.resumes and key not in {c["state"].split("@")[0] for c in chosen}:
            chosen.append(trial)
    chosen += [t for t in killed if t not in chosen][: args.resumes - len(chosen)]
    resumed = []
    for trial in chosen:
        run_dir = Path(trial["run_dir"])
        result = run_child(resume_args(Path(trial["project"]), run_dir), logs / f"resume{trial['trial']}.log", 1)
        steps = [r["step"] for r in read_metrics(run_dir)]
        state = ckpt.read_state(run_dir / "last")
        resumed.append(
            {
                "trial": trial["trial"],
                "from": trial["state"],
                "code": result["code"],
                "steps": steps,
                "last_step": state["step"],
                "log": (logs / f"resume{trial['trial']}.log").read_text()[-600:],
            }
        )
    report = {"run_s": round(run_s, 2), "trials": trials, "resumed": resumed}
    print(json.dumps(report))


if __name__ == "__main__":
    main_driver()
