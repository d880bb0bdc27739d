"""`s4mi`: the headless command line over the same engine as the napari widgets.

Heavy modules (torch and the engine) are imported inside the commands, so `s4mi --help` stays fast.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from . import __version__
from .core.config import DEVICES, PRECISIONS, PRESETS
from .core.errors import S4MIError
from .core.registry import method_entry, method_names

SEG = "segmentation"
BENCH_PARTS = ("train", "iou", "slide", "memory", "startup", "gui")  # benchmarks/s4mi_bench/run.py PARTS


def _preset_default(field: str) -> str:
    """What the presets of the default segmentation method set ``field`` to, for the help text."""
    entry = method_entry(SEG, method_names(SEG)[0])
    values = {name: getattr(entry.config.for_preset(name), field) for name in PRESETS}
    return ", ".join(f"{name}: {value}" for name, value in values.items())


def _add_train_parser(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser("train", help="train a model", description="Train a model on a folder or project.")
    tasks = train.add_subparsers(dest="task", required=True, metavar="TASK")
    seg = tasks.add_parser(
        "seg",
        help="train segmentation",
        description="Train a segmentation method; settings not given come from the preset.",
    )
    source = seg.add_argument_group("data (give --images, or --project)")
    source.add_argument("--images", type=Path, help="folder of slides (PNG, JPEG, BMP, TIFF); left untouched")
    source.add_argument("--masks", type=Path, help="folder of masks to import, matched by name (default: none)")
    source.add_argument("--project", type=Path, help="project folder (default: <images>/.s4mi when writable)")
    seg.add_argument("--out", type=Path, required=True, help="(required) run folder to create, or to resume")
    methods = method_names(SEG)
    summaries = "; ".join(f"{name}: {method_entry(SEG, name).summary}" for name in methods)
    seg.add_argument("--method", choices=methods, default=methods[0], help=f"{summaries} (default: {methods[0]})")
    seg.add_argument(
        "--preset", choices=PRESETS, default=PRESETS[0], help="settings to start from (default: %(default)s)"
    )
    seg.add_argument(
        "--label-fraction",
        type=float,
        help="fraction of the annotated training slides used with their masks (default: 1.0)",
    )
    seg.add_argument("--seed", type=int, help="seed of the split, the labeled subset, init and batches (default: 0)")
    seg.add_argument("--iterations", type=int, help=f"training steps (default: {_preset_default('iterations')})")
    seg.add_argument(
        "--input-size", type=int, help=f"network input, a multiple of 32 (default: {_preset_default('input_size')})"
    )
    seg.add_argument(
        "--labeled-batch", type=int, help=f"labeled images per step (default: {_preset_default('labeled_batch')})"
    )
    seg.add_argument(
        "--unlabeled-batch",
        type=int,
        help=f"unlabeled images per step, semi-supervised methods (default: {_preset_default('unlabeled_batch')})",
    )
    seg.add_argument("--lr", type=float, help="Adam learning rate, cosine decay (default: 3.6e-4)")
    seg.add_argument("--device", choices=DEVICES, help="auto picks CUDA, then Apple MPS, then the CPU (default: auto)")
    seg.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="auto: bf16 where the GPU or CPU runs it natively, else fp32 (default: auto)",
    )
    seg.add_argument(
        "--red-norm",
        choices=("auto", "on", "off"),
        help="red-channel normalisation; auto: on for colour slides (default: auto)",
    )
    seg.add_argument(
        "--val-every", type=int, help=f"steps between validations (default: {_preset_default('val_every')})"
    )
    seg.add_argument(
        "--memory-saving",
        choices=("auto", "on", "off"),
        help="CPU activation checkpointing; auto: on when the step would crowd the RAM (default: auto)",
    )
    seg.add_argument(
        "--no-cuda-graphs",
        dest="cuda_graphs",
        action="store_false",
        default=None,
        help="on CUDA, run every step eagerly instead of replaying a captured graph (default: graphs on)",
    )
    seg.add_argument(
        "--weights",
        help="initial weights of every network: 'imagenet' (downloaded once into the Hugging Face cache; "
        "`s4mi weights fetch` pre-fetches), 'none', or a .safetensors file (default: imagenet, random if offline)",
    )
    seg.add_argument("--resume", action="store_true", help="continue the stopped run in --out (default: off)")
    seg.add_argument("--init-from", type=Path, help="warm start from a finished run's weights (default: none)")


def _add_predict_parser(commands: argparse._SubParsersAction) -> None:
    predict = commands.add_parser(
        "predict", help="predict masks for a folder of slides", description="Predict with a trained run."
    )
    predict.add_argument("--run", type=Path, required=True, help="(required) a training run folder")
    predict.add_argument("--images", type=Path, required=True, help="(required) folder of slides")
    predict.add_argument(
        "--out", type=Path, required=True, help="(required) output folder for <stem>.png masks (<stem>.tif if huge)"
    )
    predict.add_argument(
        "--with",
        dest="which",
        default="auto",
        help="the network to predict with (cnn, swin), their mean, or auto: the run's best on validation "
        "(default: %(default)s)",
    )
    predict.add_argument(
        "--disagreement", action="store_true", help="also write <stem>_disagreement.tif (default: off)"
    )
    predict.add_argument("--device", choices=DEVICES, default="auto", help="(default: %(default)s)")


def _add_bench_parser(commands: argparse._SubParsersAction) -> None:
    bench = commands.add_parser(
        "bench",
        help="benchmark the engine against plain PyTorch steps",
        description="Benchmark (needs the repository's benchmarks/ folder).",
    )
    bench.add_argument("--quick", action="store_true", help="a smoke test of a few minutes (default: off)")
    bench.add_argument(
        "--parts", nargs="+", choices=BENCH_PARTS, default=list(BENCH_PARTS), help="which parts (default: all)"
    )
    bench.add_argument("--out", type=Path, help="folder for bench.md and bench.json (default: none)")
    bench.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="(default: %(default)s)")
    bench.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="the engine's precision (auto: as training picks it; the plain baseline is always fp32) "
        "(default: %(default)s)",
    )


def _add_weights_parser(commands: argparse._SubParsersAction) -> None:
    weights = commands.add_parser(
        "weights",
        help="pre-fetch ImageNet weights (for machines without a network)",
        description="Manage the ImageNet weights in the Hugging Face cache.",
    )
    actions = weights.add_subparsers(dest="action", required=True, metavar="ACTION")
    fetch = actions.add_parser(
        "fetch",
        help="download timm ImageNet weights into the cache",
        description="Download timm ImageNet weights into the Hugging Face cache (HF_HUB_CACHE / HF_HOME); copy "
        "the cache to an air-gapped machine to use them there.",
    )
    fetch.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help="timm model names, e.g. resnet34.tv_in1k or vit_base_patch16_224 (default: every model the presets use)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="s4mi", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_train_parser(commands)
    _add_predict_parser(commands)
    demo = commands.add_parser(
        "demo", help="train and predict on the bundled sample project (headless)", description="The headless demo."
    )
    demo.add_argument(
        "--out", type=Path, default=Path("s4mi-demo"), help="folder for the project and run (default: %(default)s)"
    )
    demo.add_argument("--iterations", type=int, default=60, help="training steps (default: %(default)s)")
    _add_bench_parser(commands)
    _add_weights_parser(commands)
    gui = commands.add_parser(
        "napari", help="open napari with the S4MI widgets docked (and a project)", description="Start napari."
    )
    gui.add_argument("path", nargs="?", help="a slide folder or S4MI project to open (default: none)")
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


def cmd_train(args: argparse.Namespace) -> int:
    from .console import drive
    from .core.engine import load_run_config, train
    from .core.events import CancelToken
    from .core.registry import make_config

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
            "memory_saving": args.memory_saving,
            "cuda_graphs": args.cuda_graphs,
        }
        config = make_config(SEG, args.method, args.preset, **overrides)
        if args.weights:
            config.set_weights(args.weights)
    cancel = CancelToken()
    previous = signal.signal(signal.SIGINT, lambda *_: cancel.cancel())
    try:
        events = train(project, config, args.out, cancel, resume=args.resume, init_from=args.init_from)
        done = drive(events, config.iterations)
    finally:
        signal.signal(signal.SIGINT, previous)
    state = "stopped (resume with --resume)" if done.cancelled else "finished"
    print(f"s4mi: run {state} at step {done.step}: {args.out}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .core.errors import InputError
    from .core.io import list_slides, open_slide
    from .core.predictor import open_predictor
    from .core.writers import write_prediction

    slides = list_slides(args.images) if args.images.is_dir() else []
    if not slides:
        raise InputError(f"{args.images}: no PNG/JPEG/BMP/TIFF slides found; point --images at a folder of slides")
    predictor = open_predictor(args.run, which=args.which, device=args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    for path in tqdm(slides, unit="slide", file=sys.stderr):
        with open_slide(path) as slide:
            prediction = predictor.predict(slide, out_dir=args.out / f".{path.stem}.work")
        write_prediction(args.out, path.stem, prediction, len(predictor.classes), args.disagreement)
    print(f"s4mi: predicted {len(slides)} slides with {predictor.which} into {args.out}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args.out, args.iterations)


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench_entry import run_bench

    return run_bench(args)


def cmd_napari(args: argparse.Namespace) -> int:
    from .widgets.launch import main as launch

    return launch(args.path, sample=args.sample)


def cmd_weights(args: argparse.Namespace) -> int:
    from .core.models.fetch import fetch_weights

    results = fetch_weights(args.names)
    for result in results:
        print(f"s4mi: {result.line()}", file=sys.stdout if result.ok else sys.stderr)
    return 0 if all(r.ok for r in results) else 2


HANDLERS = {"train": cmd_train, "predict": cmd_predict, "demo": cmd_demo, "bench": cmd_bench, "napari": cmd_napari}
HANDLERS["weights"] = cmd_weights


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return HANDLERS[args.command](args)
    except S4MIError as exc:
        print(f"s4mi: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
