"""`s4mi project rebuild`: a project's manifest rebuilt from the slides and the masks on disk."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_project_parser(commands: argparse._SubParsersAction) -> None:
    project = commands.add_parser(
        "project",
        help="repair a project (rebuild its manifest)",
        description="Look after a project folder.",
    )
    actions = project.add_subparsers(dest="action", required=True, metavar="ACTION")
    rebuild = actions.add_parser(
        "rebuild",
        help="rebuild s4mi-project.json from the slides and the masks on disk",
        description="Rebuild a lost or corrupt manifest: the mask files are kept, slides with a mask file are "
        "marked annotated, classes, class labels, splits and groups the old manifest still holds are kept, and the "
        "old manifest is kept aside as s4mi-project.json.corrupt-<timestamp>.",
    )
    rebuild.add_argument("--project", type=Path, required=True, help="(required) the project folder to rebuild")
    rebuild.add_argument(
        "--images",
        type=Path,
        help="the slide folder (default: the one the old manifest names, else the parent of a .s4mi folder)",
    )


def cmd_project(args: argparse.Namespace) -> int:
    from ..core.project import rebuild_project

    project, summary = rebuild_project(args.project, args.images)
    print(f"s4mi: {summary}")
    for name, reason in project.unreadable.items():
        print(f"s4mi: warning: {project.slides_dir / name}: left out, not a readable slide: {reason}", file=sys.stderr)
    if summary.annotated:
        print("s4mi: unmark slides whose mask is not finished (napari: Shift-A); they count as labels now")
    return 0
