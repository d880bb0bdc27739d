"""`s4mi`: the headless command line over the same engine as the napari widgets.

Heavy modules (torch and the engine) are imported inside the commands, so `s4mi --help` stays fast.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

from .core.errors import S4MIError


def _add_train_parser(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser("train", help="train a model")
    tasks = train.add_subparsers(dest="task", required=True)
    seg = tasks.add_parser("seg", help="train segmentation (cross-teaching or supervised)")
    source = seg.add_argument_group("data")
    source.add_argument("--images", type=Path, help="folder of slides (PNG, JPEG, BMP, TIFF); left untouched")
    source.add_argument("--masks", type=Path, help="folder of masks to import, matched by name")
    source.add_argument("--project", type=Path, help="project folder (default <images>/.s4mi when writable)")
    seg.add_argument("--out", type=Path, required=True, help="run folder to create (or to resume)")
    seg.add_argument("--method", choices=("cross-teaching", "supervised"), default="cross-teaching")
    seg.add_argument("--preset", choices=("cpu-small", "paper"), default="cpu-small")
    seg.add_argument("--label-fraction", type=float, help="fraction of annotated training slides used labeled")
    seg.add_argument("--seed", type=int)
    seg.add_argument("--iterations", type=int)
    seg.add_argument("--input-size", type=int, help="network input size, a multiple of 32")
    seg.add_argument("--labeled-batch", type=int)
    seg.add_argument("--unlabeled-batch", type=int)
    seg.add_argument("--lr", type=float)
    seg.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"))
    seg.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"))
    seg.add_argument("--red-norm", choices=("auto", "on", "off"))
    seg.add_argument("--val-every", type=int)
    seg.add_argument(
        "--no-cuda-graphs",
        dest="cuda_graphs",
        action="store_false",
        default=None,
        help="on CUDA, run every step eagerly instead of replaying a captured graph",
    )
    seg.add_argument("--weights", help="'imagenet' (local cache only), 'none', or a .safetensors file")
    seg.add_argument("--resume", action="store_true", help="continue the stopped run in --out")
    seg.add_argument("--init-from", type=Path, help="warm start from a finished run's weights")


def _add_predict_parser(commands: argparse._SubParsersAction) -> None:
    predict = commands.add_parser("predict", help="predict masks for a folder of slides")
    predict.add_argument("--run", type=Path, required=True, help="a training run folder")
    predict.add_argument("--images", type=Path, required=True, help="folder of slides")
    predict.add_argument("--out", type=Path, required=True, help="output folder for <stem>.png masks")
    predict.add_argument("--with", dest="which", choices=("auto", "cnn", "swin", "mean"), default="auto")
    predict.add_argument("--disagreement", action="store_true", help="also write <stem>_disagreement.tif")
    predict.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")


def _add_bench_parser(commands: argparse._SubParsersAction) -> None:
    from .bench.run import PARTS

    bench = commands.add_parser("bench", help="benchmark the engine against a plain fp32 PyTorch implementation")
    bench.add_argument("--quick", action="store_true", help="a smoke test of a few minutes (smaller sizes)")
    bench.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS), help="which parts to run")
    bench.add_argument("--out", type=Path, help="folder for bench.md and bench.json")
    bench.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    bench.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16", "fp16"),
        default="auto",
        help="the engine's precision (auto: as training picks it; the plain baseline is always fp32)",
    )


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench.run import run_bench

    run_bench(tuple(args.parts), quick=args.quick, out=args.out, device=args.device, precision=args.precision)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="s4mi", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    _add_train_parser(commands)
    _add_predict_parser(commands)
    demo = commands.add_parser("demo", help="train and predict on the bundled sample project (headless)")
    demo.add_argument("--out", type=Path, default=Path("s4mi-demo"), help="folder for the project and run")
    demo.add_argument("--iterations", type=int, default=60)
    _add_bench_parser(commands)
    gui = commands.add_parser("napari", help="open napari with the S4MI widgets docked (and a project)")
    gui.add_argument("path", nargs="?", help="a slide folder or S4MI project to open")
    gui.add_argument("--sample", action="store_true", help="open the sample project (created on first use)")
    return parser


def open_or_create_project(images: Path | None, project_dir: Path | None, masks: Path | None, out: Path):
    """The project to train on: opened from --project, or created from --images (masks imported)."""
    from .core.errors import ProjectError
    from .core.project import Project

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
    if masks is not None:
        count = project.import_masks(masks)
        print(f"s4mi: imported {count} masks from {masks}", file=sys.stderr)
    return project


def _drive(events: Iterator, total: int) -> object:
    """Print events with a progress bar; returns the Done event."""
    from tqdm import tqdm

    from .core.events import Checkpoint, Done, Message, Progress, Validation

    done = None
    with tqdm(total=total, unit="step", dynamic_ncols=True, file=sys.stderr) as bar:
        for event in events:
            if isinstance(event, Progress):
                bar.n = event.step
                bar.set_postfix(loss=f"{event.loss:.4f}", refresh=False)
                bar.refresh()
            elif isinstance(event, Validation):
                text = " ".join(f"{k}={v:.3f}" for k, v in event.metrics.items())
                bar.write(f"step {event.step}: {text}{' (best)' if event.best else ''}")
            elif isinstance(event, Message):
                bar.write(f"{event.level}: {event.text}")
            elif isinstance(event, Checkpoint) and event.kind == "last":
                bar.set_description(f"saved step {event.step}")
            elif isinstance(event, Done):
                done = event
    return done


def cmd_train_seg(args: argparse.Namespace) -> int:
    from .core.config import preset
    from .core.engine import load_run_config, train_segmentation
    from .core.events import CancelToken

    project = open_or_create_project(args.images, args.project, args.masks, args.out)
    if args.resume:
        config = load_run_config(args.out)
    else:
        overrides = {
            "label_fraction": args.label_fraction,
            "seed": args.seed,
            "iterations": args.iterations,
            "input_size": args.input_size,
            "labeled_batch": args.labeled_batch,
            "unlabeled_batch": args.unlabeled_batch,
            "lr": args.lr,
            "device": args.device,
            "precision": args.precision,
            "red_norm": args.red_norm,
            "val_every": args.val_every,
            "cuda_graphs": args.cuda_graphs,
        }
        config = preset(args.preset, method=args.method, **overrides)
        if args.weights:
            config.cnn["weights"] = args.weights
            config.swin["weights"] = args.weights
    cancel = CancelToken()
    previous = signal.signal(signal.SIGINT, lambda *_: cancel.cancel())
    try:
        events = train_segmentation(project, config, args.out, cancel, resume=args.resume, init_from=args.init_from)
        done = _drive(events, config.iterations)
    finally:
        signal.signal(signal.SIGINT, previous)
    state = "stopped (resume with --resume)" if done.cancelled else "finished"
    print(f"s4mi: run {state} at step {done.step}: {args.out}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from .core.errors import InputError
    from .core.io import list_slides, open_slide
    from .core.predictor import Predictor
    from .core.writers import write_prediction

    slides = list_slides(args.images) if args.images.is_dir() else []
    if not slides:
        raise InputError(f"{args.images}: no PNG/JPEG/BMP/TIFF slides found; point --images at a folder of slides")
    predictor = Predictor(args.run, which=args.which, device=args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    from tqdm import tqdm

    for path in tqdm(slides, unit="slide", file=sys.stderr):
        with open_slide(path) as slide:
            prediction = predictor.predict(slide, out_dir=args.out / f".{path.stem}.work")
        write_prediction(args.out, path.stem, prediction, len(predictor.classes), args.disagreement)
    print(f"s4mi: predicted {len(slides)} slides with {predictor.which} into {args.out}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args.out, args.iterations)


def cmd_napari(args: argparse.Namespace) -> int:
    from .widgets.launch import main as launch

    return launch(args.path, sample=args.sample)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {
        "train": cmd_train_seg,
        "predict": cmd_predict,
        "demo": cmd_demo,
        "bench": cmd_bench,
        "napari": cmd_napari,
    }
    try:
        return handlers[args.command](args)
    except S4MIError as exc:
        print(f"s4mi: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
