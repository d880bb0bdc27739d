"""What the `s4mi` commands share: data, device and augmentation options, the project to train on, Ctrl-C and SIGTERM
handling."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from ..core.config import DEVICES, PRECISIONS


def add_data_arguments(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """--images / --project and the required --out of a training command; returns the data group."""
    source = parser.add_argument_group("data (give --images, or --project)")
    source.add_argument(
        "--images",
        type=Path,
        help="folder of slides (PNG, JPEG, BMP, TIFF), left untouched (default: none; or --project)",
    )
    source.add_argument("--project", type=Path, help="project folder (default: <images>/.s4mi when writable)")
    parser.add_argument("--out", type=Path, required=True, help="(required) run folder to create, or to resume")
    start = parser.add_mutually_exclusive_group()
    start.add_argument(
        "--resume",
        action="store_true",
        help="continue the stopped run in --out from its newest complete checkpoint (from step 0 with its saved "
        "settings when it has none) (default: off)",
    )
    start.add_argument(
        "--restart",
        action="store_true",
        help="start the run in --out over when it holds no complete checkpoint (default: off)",
    )
    return source


def add_augmentation_arguments(group: argparse._ActionsContainer) -> None:
    """--zoom MIN MAX and --colour-jitter S: segmentation's scale and colour augmentation (both off by default)."""
    group.add_argument(
        "--zoom",
        type=float,
        nargs=2,
        metavar=("MIN", "MAX"),
        help="scale augmentation: zoom factors drawn from [MIN, MAX], e.g. 0.7 1.5 (default: 1 1, off)",
    )
    group.add_argument(
        "--colour-jitter",
        type=float,
        metavar="S",
        help="colour augmentation: brightness, contrast, saturation and gamma jitter of strength S, e.g. 0.3 "
        "(default: 0, off)",
    )


def augmentation_settings(args: argparse.Namespace) -> dict[str, float | None]:
    """The segmentation config fields of --zoom and --colour-jitter (None: not given)."""
    return {
        "zoom_min": args.zoom[0] if args.zoom else None,
        "zoom_max": args.zoom[1] if args.zoom else None,
        "colour_jitter": args.colour_jitter,
    }


CROSS_VIEW_HELP = (
    "CASS pretraining: each network its own augmented view of an image (default: one shared view, as published)"
)


def pretraining_settings(args: argparse.Namespace) -> dict[str, int | bool | None]:
    """The settings of a new pretraining given on the command line (None: the preset's)."""
    return {"iterations": args.pretrain_iterations, "cross_view": True if args.cross_view else None}


def add_device_arguments(parser: argparse.ArgumentParser) -> None:
    """--device, --precision, --no-cuda-graphs, --weights."""
    parser.add_argument(
        "--device", choices=DEVICES, help="auto picks CUDA, then Apple MPS, then the CPU (default: auto)"
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="auto: bf16 where the GPU or CPU runs it natively, else fp32 (default: auto)",
    )
    parser.add_argument(
        "--no-cuda-graphs",
        dest="cuda_graphs",
        action="store_false",
        default=None,
        help="on CUDA, run every step eagerly instead of replaying a captured graph (default: graphs on)",
    )
    parser.add_argument(
        "--weights",
        help="initial weights of every network: 'imagenet' (downloaded once into the Hugging Face cache; "
        "`s4mi weights fetch` pre-fetches), 'none', or a .safetensors file (default: imagenet, random if offline)",
    )


def open_or_create_project(
    images: Path | None,
    project_dir: Path | None,
    masks: Path | None,
    out: Path,
    mask_values: str | None = None,
    replace: bool = False,
):
    """The project to train on: opened from --project, or created from --images (masks imported; ``mask_values``
    and ``replace`` as in ``Project.import_masks``). The import and unreadable files are reported on stderr."""
    from ..core.errors import ProjectError
    from ..core.project import Project

    if images is None:
        if project_dir is None:
            raise ProjectError("give --images DIR (with --masks DIR) or --project DIR")
        project = Project.open(project_dir)
    else:
        if project_dir is None:
            try:
                project = Project.create(images)
            except ProjectError as exc:
                if "read-only" not in str(exc):
                    raise
                project_dir = out.parent / f"{out.name}-project"
                print(f"s4mi: {images} is read-only; the project lives in {project_dir}", file=sys.stderr)
        if project_dir is not None:
            project = Project.create(images, project_dir=project_dir)
    report_unreadable(project)
    if masks is not None:
        summary = project.import_masks(masks, replace=replace, mask_values=mask_values)
        print(f"s4mi: {summary}", file=sys.stderr)  # empty masks: counted here, warned about once by training
    return project


def report_unreadable(project) -> None:
    """One stderr line per file of the slide folder that is not a readable slide (left out of the project)."""
    for name, reason in project.unreadable.items():
        print(f"s4mi: warning: {project.slides_dir / name}: left out, not a readable slide: {reason}", file=sys.stderr)


@contextlib.contextmanager
def cancel_on_signals(cancel) -> Iterator[None]:
    """Ctrl-C (SIGINT) and SIGTERM cancel ``cancel`` (the job stops after its step) instead of killing the
    command; the previous handlers come back on exit."""
    stops = [signal.SIGINT, signal.SIGTERM] if hasattr(signal, "SIGTERM") else [signal.SIGINT]
    previous = {number: signal.signal(number, lambda *_: cancel.cancel()) for number in stops}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def run_with_ctrl_c(start: Callable, out: Path) -> int:
    """Drive ``start(cancel)``'s events with a progress bar; Ctrl-C or SIGTERM stops after the step with a
    checkpoint."""
    from ..console import drive
    from ..core.events import CancelToken

    cancel = CancelToken()
    with cancel_on_signals(cancel):
        done = drive(start(cancel))
    if done is None:
        return 0
    state = "stopped (resume with --resume)" if done.cancelled else "finished"
    print(f"s4mi: run {state} at step {done.step}: {out}")
    return 0
