"""`s4mi clusters RUN`: show, or choose, which clusters of an unsupervised run (PiCIE) are foreground."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_clusters_parser(commands: argparse._SubParsersAction) -> None:
    clusters = commands.add_parser(
        "clusters",
        help="show or choose the foreground clusters of a PiCIE run",
        description="A PiCIE run predicts classes through a map from its clusters (0 = the largest at the first "
        "clustering) to classes: fitted on the validation masks, or the foreground clusters chosen here.",
    )
    clusters.add_argument("run", type=Path, help="the run folder (the --out of its training) (required)")
    choice = clusters.add_mutually_exclusive_group()
    choice.add_argument(
        "--foreground",
        type=int,
        nargs="+",
        metavar="K",
        help="predict these clusters as foreground, the others as background (default: keep the current choice)",
    )
    choice.add_argument(
        "--auto",
        action="store_true",
        help="go back to the map fitted on validation (or cluster 0 = background without one) (default: off)",
    )


def describe(choice) -> str:
    """The run's clusters in a few lines."""
    fitted = "none (no validation masks)" if choice.fitted is None else _classes(choice.fitted)
    picked = ", ".join(map(str, choice.foreground)) if choice.foreground else "none (the fitted or default map)"
    return (
        f"{choice.run_dir}: {choice.clusters} clusters\n"
        f"  map fitted on validation: {fitted}\n"
        f"  foreground chosen by hand: {picked}\n"
        f"  prediction uses: {_classes(choice.in_use)}"
    )


def _classes(mapping: list[int]) -> str:
    return ", ".join(f"cluster {k} -> class {c}" for k, c in enumerate(mapping))


def cmd_clusters(args: argparse.Namespace) -> int:
    from ..core.cluster_map import read_cluster_choice, set_foreground_clusters
    from ..core.errors import InputError

    choice = read_cluster_choice(args.run)
    if choice is None:
        raise InputError(f"{args.run}: not a PiCIE run; only runs with clusters have a foreground to choose")
    if args.foreground is not None or args.auto:
        choice = set_foreground_clusters(args.run, [] if args.auto else args.foreground)
    print(describe(choice))
    return 0
