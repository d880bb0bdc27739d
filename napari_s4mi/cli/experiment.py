"""`s4mi experiment`: the annotation-efficiency protocol (methods x label fractions x seeds) as one command."""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

from ..core.experiment.spec import PRESETS, TASKS, task_methods
from .common import (
    CROSS_VIEW_HELP,
    add_augmentation_arguments,
    add_device_arguments,
    augmentation_settings,
    cancel_on_signals,
    pretraining_settings,
)


def _percent(text: str) -> float:
    try:
        value = float(text.rstrip("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a percentage") from None
    if not 0 < value <= 100:
        raise argparse.ArgumentTypeError(f"{text}: a label fraction must lie in (0, 100]%")
    return value / 100


def _split(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(v) for v in text.split("/"))
    except ValueError:
        parts = ()
    if len(parts) != 3 or sum(parts) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give train/val/test percentages, e.g. 70/10/20")
    return tuple(p / sum(parts) for p in parts)  # type: ignore[return-value]


def add_experiment_parser(commands: argparse._SubParsersAction) -> None:
    cpu, paper = PRESETS["cpu-small"], PRESETS["paper"]
    exp = commands.add_parser(
        "experiment",
        help="run the annotation-efficiency grid: methods x label fractions x seeds, scored on a test split",
        description="Train every method at every label fraction with every seed on one seeded, group-aware "
        "train/val/test split, score each run on the test split, and write results.json, table.md, table.csv and "
        "plot.png to --out. Re-running the same command resumes: finished runs are skipped, a stopped one resumes "
        "from its checkpoint.",
    )
    exp.add_argument("--out", type=Path, required=True, help="(required) experiment folder to create, or to resume")
    exp.add_argument("--task", choices=tuple(TASKS), help="seg or cls (default: from --masks / --labels / the data)")
    data = exp.add_argument_group("data (--images with --masks or --labels, or --project; not needed to resume)")
    data.add_argument("--images", type=Path, help="folder of slides, left untouched (default: none)")
    data.add_argument("--masks", type=Path, help="folder of masks matched by name: segmentation (default: none)")
    data.add_argument("--labels", type=Path, help="CSV image_id,label: classification (default: none)")
    data.add_argument("--project", type=Path, help="a project to copy the data from; never changed (default: none)")
    data.add_argument("--mask-values", metavar="VALUE:CLASS,...", help="mask value mapping on import (default: 0/v)")
    data.add_argument("--multi-label", action="store_true", help="several class labels per slide (default: one)")
    data.add_argument("--none-class", help="class of all-zero one-hot label rows (default: none)")
    grid = exp.add_argument_group("grid")
    grid.add_argument(
        "--preset",
        choices=tuple(PRESETS),
        default="cpu-small",
        help=f"cpu-small: fractions 10/50/100%%, {len(cpu.seeds)} seeds, short runs sized for a 2-core CPU (ISIC-2017 "
        f"segmentation grid under 3 h); paper: fractions {'/'.join(f'{f * 100:g}' for f in paper.fractions)}%%, "
        f"{len(paper.seeds)} seeds, the paper's settings, for a GPU (default: %(default)s)",
    )
    methods = "; ".join(f"{short}: {', '.join(task_methods(task))}" for short, task in TASKS.items())
    grid.add_argument("--methods", nargs="+", help=f"methods to compare ({methods}) (default: every one of the task)")
    grid.add_argument(
        "--fractions", nargs="+", type=_percent, help="label fractions in %% of the training slides (default: preset's)"
    )
    grid.add_argument("--seeds", nargs="+", type=int, help="seeds of the runs (default: the preset's, 0 1 2)")
    grid.add_argument(
        "--only",
        nargs="+",
        metavar="GLOB",
        help="run only the runs named like this, e.g. 'cross-teaching-*-seed0' (runs: <method>-<percent>-seed<k>) "
        "(default: all)",
    )
    grid.add_argument("--part", metavar="I/N", help="run part I of N of the grid (default: the whole grid)")
    grid.add_argument("--report-only", action="store_true", help="rewrite the report, train nothing (default: off)")
    split = exp.add_argument_group("split (slide level; test slides never train or select models)")
    split.add_argument("--split", type=_split, help="train/val/test percentages (default: 70/10/20)")
    split.add_argument("--split-seed", type=int, default=0, help="seed of the split (default: %(default)s)")
    split.add_argument(
        "--split-per-seed", action="store_true", help="a new split for every seed (default: one split for all)"
    )
    split.add_argument("--split-file", type=Path, help="CSV image_id,split to use as is (default: a seeded split)")
    split.add_argument("--groups", type=Path, help="CSV image_id,group: a group never spans splits (default: none)")
    split.add_argument("--group-regex", help="group = 1st capture group of a regex on the file name (default: none)")
    train = exp.add_argument_group("training (default: the preset's settings of each method)")
    train.add_argument(
        "--iterations",
        type=int,
        help="training (fine-tuning) steps of every run (default: cpu-small: seg 300, cls 200; paper: each method's)",
    )
    train.add_argument(
        "--pretrain-iterations",
        type=int,
        help="CASS/DINO (or --init ssl's) pretraining steps, once per seed (default: cpu-small: 500; paper: 100 "
        "epochs)",
    )
    train.add_argument(
        "--init",
        choices=("ssl",),
        help="seg: start both encoders of every run from a CASS pretraining of them on the seed's training slides "
        "(cass-seg, once per seed, no masks) (default: the networks' --weights)",
    )
    train.add_argument(
        "--cross-view",
        action="store_true",
        help=CROSS_VIEW_HELP,
    )
    train.add_argument("--input-size", type=int, help="network input, a multiple of 32 (default: preset's)")
    train.add_argument(
        "--batch", type=int, help="images per step; seg: labeled, and as many unlabeled (default: preset's)"
    )
    train.add_argument("--lr", type=float, help="learning rate of every run (default: each method's)")
    train.add_argument("--val-every", type=int, help="steps between validations (default: preset's)")
    add_augmentation_arguments(train)
    add_device_arguments(exp)


def _spec(args: argparse.Namespace, task: str):
    from ..core.errors import InputError
    from ..core.experiment import ExperimentSpec, SplitSpec

    settings = {
        "iterations": args.iterations,
        "input_size": args.input_size,
        "lr": args.lr,
        "val_every": args.val_every,
        "device": args.device,
        "precision": args.precision,
        "cuda_graphs": args.cuda_graphs,
    }
    if args.batch is not None:
        settings |= (
            {"batch": args.batch}
            if task == "classification"
            else dict.fromkeys(("labeled_batch", "unlabeled_batch"), args.batch)
        )
    augmentation = {k: v for k, v in augmentation_settings(args).items() if v is not None}
    if augmentation and task == "classification":
        raise InputError("--zoom and --colour-jitter augment segmentation; classification uses its own views")
    settings |= augmentation
    if args.cross_view and task == "segmentation" and not args.init:
        raise InputError("--cross-view sets up a pretraining: for segmentation, give --init ssl with it")
    split = SplitSpec(*(args.split or (0.7, 0.1, 0.2)), seed=args.split_seed, per_seed=args.split_per_seed)
    split.file = str(args.split_file.resolve()) if args.split_file else None
    split.groups_csv = str(args.groups.resolve()) if args.groups else None
    split.group_regex = args.group_regex
    return ExperimentSpec(
        task,
        methods=tuple(args.methods or ()),
        fractions=tuple(args.fractions or ()),
        seeds=tuple(args.seeds or ()),
        preset=args.preset,
        overrides={k: v for k, v in settings.items() if v is not None},
        pretrain_overrides={k: v for k, v in pretraining_settings(args).items() if v is not None},
        weights=args.weights,
        split=split,
        init=args.init,
    )


def _task(args: argparse.Namespace, source) -> str:
    from ..core.errors import InputError
    from ..core.experiment.runner import EXPERIMENT_FILE

    if args.task:
        return TASKS[args.task]
    task = source.task()
    stored = args.out / EXPERIMENT_FILE
    if task is None and stored.is_file():
        task = json.loads(stored.read_text())["settings"]["task"]
    if task is None:
        raise InputError("cannot tell the task from the data: give --task seg or --task cls")
    return task


def cmd_experiment(args: argparse.Namespace) -> int:
    from ..core.errors import InputError
    from ..core.events import CancelToken
    from ..core.experiment import DataSource
    from ..core.experiment.report import write_report
    from ..core.experiment.runner import EXPERIMENT_FILE, run_experiment
    from ..core.experiment.spec import parse_part

    if args.report_only:
        if not (args.out / EXPERIMENT_FILE).is_file():
            raise InputError(f"{args.out}: no experiment here; run one first")
        print(f"s4mi: report written: {', '.join(p.name for p in write_report(args.out))} in {args.out}")
        return 0
    given = args.images or args.masks or args.labels or args.project
    source = DataSource(
        args.images, args.masks, args.labels, args.project, args.mask_values, args.multi_label, args.none_class
    )
    spec = _spec(args, _task(args, source))
    part = parse_part(args.part) if args.part else None
    cancel = CancelToken()
    with cancel_on_signals(cancel):
        done = _drive(run_experiment(spec, args.out, source if given else None, cancel, tuple(args.only or ()), part))
    if done is None:
        return 0
    state = "stopped (run the same command again to resume)" if done.stopped else "finished"
    print(
        f"s4mi: experiment {state}: {done.trained} run(s) trained, {done.skipped} done already, {done.failed} "
        f"failed; report: {', '.join(p.name for p in done.written)} in {args.out}"
    )
    if done.failed:
        print(f"s4mi: error: {done.failed} run(s) failed (listed above): fix and run again", file=sys.stderr)
        return 2
    return 0


def _drive(events):
    """Show the grid's progress on a bar ('run 4/21: cross-teaching 10% seed 1 — step 120/400')."""
    from tqdm import tqdm

    from ..core.events import Message, Progress, Validation
    from ..core.experiment.runner import GridDone

    done, shown = None, None  # shown: the (run, stage) on the bar; a new one restarts its count and its clock
    events = iter(events)
    first = next(events, None)  # the experiment is checked and prepared before a bar shows
    with tqdm(unit="step", dynamic_ncols=True, file=sys.stderr) as bar:
        for item in itertools.chain([first] if first is not None else [], events):
            if isinstance(item, GridDone):
                done = item
                continue
            event = item.event
            if isinstance(event, Progress):
                if (item.run.name, item.stage) != shown or bar.total != event.total:
                    bar.reset(total=event.total)
                    shown = (item.run.name, item.stage)
                bar.n = event.step
                bar.set_description(item.describe().split(" — ")[0] + (f" ({item.stage})" if item.stage else ""))
                bar.set_postfix(loss=f"{event.loss:.4f}", refresh=False)
                bar.refresh()
            elif isinstance(event, Validation):
                bar.write(f"{item.run.name} step {event.step}: {event.metric} {event.score:.3f}")
            elif isinstance(event, Message):
                bar.write(f"{item.run.name}: {event.level}: {event.text}")
            elif item.kind in ("skip", "evaluate", "start", "failed"):
                bar.write(item.describe())
            elif item.kind == "done" and item.result is not None:
                headline = item.result["headline"]
                seconds = sum(item.result.get("seconds", {}).values())
                bar.write(
                    f"{item.describe()} — test {headline} {item.result['metrics'][headline]:.3f} ({seconds:.0f} s)"
                )
    return done
