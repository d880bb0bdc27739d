"""`s4mi`: the headless command line over the same engine as the napari widgets.

Heavy modules (torch and the engine) are imported inside the commands, so `s4mi --help` stays fast.
"""

from __future__ import annotations

import argparse
import sys

from .. import __version__
from ..core.errors import S4MIError
from ..core.host import claim_process, release_process
from .clusters import add_clusters_parser, cmd_clusters
from .experiment import add_experiment_parser, cmd_experiment
from .other import (
    add_bench_parser,
    add_demo_parser,
    add_napari_parser,
    add_weights_parser,
    cmd_bench,
    cmd_demo,
    cmd_napari,
    cmd_weights,
)
from .predict import add_predict_parser, cmd_predict
from .project_cmd import add_project_parser, cmd_project
from .train_cls import add_cls_parser, cmd_train_cls
from .train_seg import add_seg_parser, cmd_train_seg


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="s4mi", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    train = commands.add_parser("train", help="train a model", description="Train a model on a folder or project.")
    tasks = train.add_subparsers(dest="task", required=True, metavar="TASK")
    add_seg_parser(tasks)
    add_cls_parser(tasks)
    add_predict_parser(commands)
    add_experiment_parser(commands)
    add_demo_parser(commands)
    add_bench_parser(commands)
    add_weights_parser(commands)
    add_napari_parser(commands)
    add_project_parser(commands)
    add_clusters_parser(commands)
    return parser


HANDLERS = {"predict": cmd_predict, "demo": cmd_demo, "bench": cmd_bench, "napari": cmd_napari, "weights": cmd_weights}
HANDLERS["project"] = cmd_project
HANDLERS["clusters"] = cmd_clusters
HANDLERS["experiment"] = cmd_experiment
TRAINERS = {"seg": cmd_train_seg, "cls": cmd_train_cls}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    handler = TRAINERS[args.task] if args.command == "train" else HANDLERS[args.command]
    claim_process("s4mi")  # the command owns its process: process-wide tweaks may apply (core/host.py)
    try:
        return handler(args)
    except S4MIError as exc:
        print(f"s4mi: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a disk full, read-only or not ours to write that no command caught itself
        from ..core.disk import describe_os_error

        print(f"s4mi: error: {describe_os_error(exc)}", file=sys.stderr)
        return 2
    finally:
        release_process()


if __name__ == "__main__":
    sys.exit(main())
