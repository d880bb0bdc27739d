"""`s4mi demo`, `s4mi bench`, `s4mi napari` and `s4mi weights fetch`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..core.config import PRECISIONS

BENCH_PARTS = ("train", "iou", "slide", "memory", "cass", "startup", "gui")  # benchmarks/s4mi_bench/run.py PARTS


def add_demo_parser(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser(
        "demo", help="train and predict on the bundled sample project (headless)", description="The headless demo."
    )
    demo.add_argument(
        "--out", type=Path, default=Path("s4mi-demo"), help="folder for the project and run (default: %(default)s)"
    )
    demo.add_argument("--iterations", type=int, default=60, help="training steps (default: %(default)s)")


def add_napari_parser(commands: argparse._SubParsersAction) -> None:
    gui = commands.add_parser(
        "napari", help="open napari with the S4MI widgets docked (and a project)", description="Start napari."
    )
    gui.add_argument("path", nargs="?", help="a slide folder or S4MI project to open (default: none)")
    gui.add_argument(
        "--sample", action="store_true", help="open the sample project, created on first use (default: off)"
    )


def add_bench_parser(commands: argparse._SubParsersAction) -> None:
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


def add_weights_parser(commands: argparse._SubParsersAction) -> None:
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


def cmd_demo(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    return run_demo(args.out, args.iterations)


def cmd_bench(args: argparse.Namespace) -> int:
    from ..bench_entry import run_bench

    return run_bench(args)


def cmd_napari(args: argparse.Namespace) -> int:
    from ..widgets.launch import main as launch

    return launch(args.path, sample=args.sample)


def cmd_weights(args: argparse.Namespace) -> int:
    from ..core.models.fetch import fetch_weights

    results = fetch_weights(args.names)
    for result in results:
        print(f"s4mi: {result.line()}", file=sys.stdout if result.ok else sys.stderr)
    return 0 if all(r.ok for r in results) else 2
