"""`s4mi train seg`: segmentation training from a folder of slides and masks, or a project."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.config import PRESETS
from ..core.registry import method_entry, method_names
from .common import (
    CROSS_VIEW_HELP,
    add_augmentation_arguments,
    add_data_arguments,
    add_device_arguments,
    augmentation_settings,
    open_or_create_project,
    pretraining_settings,
    run_with_ctrl_c,
)

if TYPE_CHECKING:
    from ..core.project import Project
    from ..core.seg_config import SegConfig

SEG = "segmentation"


def _preset_default(field: str) -> str:
    """What the presets of the default segmentation method set ``field`` to, for the help text."""
    entry = method_entry(SEG, method_names(SEG)[0])
    values = {name: getattr(entry.config.for_preset(name), field) for name in PRESETS}
    return ", ".join(f"{name}: {value}" for name, value in values.items())


def add_seg_parser(tasks: argparse._SubParsersAction) -> None:
    seg = tasks.add_parser(
        "seg",
        help="train segmentation",
        description="Train a segmentation method; settings not given come from the preset.",
    )
    source = add_data_arguments(seg)
    source.add_argument("--masks", type=Path, help="folder of masks to import, matched by name (default: none)")
    source.add_argument(
        "--mask-values",
        metavar="VALUE:CLASS,...",
        help="map mask values to class ids on import, e.g. 255:1 or 255:1,3:0; a new class id adds a class "
        "(default: 0/v masks get v -> 1, other values must be class ids)",
    )
    source.add_argument(
        "--replace",
        action="store_true",
        help="update the project's masks that differ from --masks (reports added/changed/unchanged; the old "
        "masks are restored if the import fails) (default: existing masks are kept)",
    )
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
    add_device_arguments(seg)
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
    add_augmentation_arguments(seg)
    seg.add_argument("--init-from", type=Path, help="warm start from a finished run's weights (default: none)")
    seg.add_argument(
        "--init",
        nargs=2,
        metavar=("ssl", "RUN"),
        help="start both encoders from a CASS pretraining of them on the project's slides (no masks) in folder RUN; "
        "pretrained there first when RUN holds none, and reused by later runs (default: the networks' --weights)",
    )
    seg.add_argument(
        "--pretrain-iterations", type=int, help="--init ssl: steps of a new pretraining (default: cpu-small 500)"
    )
    seg.add_argument(
        "--cross-view",
        action="store_true",
        help=f"with --init ssl: {CROSS_VIEW_HELP}",
    )
    seg.add_argument(
        "--clusters",
        type=int,
        metavar="K",
        help="picie: k of k-means; more clusters than classes (e.g. 4) are mapped to classes on validation "
        "(default: 2)",
    )
    seg.add_argument(
        "--foreground-cluster",
        type=int,
        action="append",
        metavar="K",
        help="picie: predict cluster K (0 = the largest) as foreground instead of the map fitted on validation; "
        "repeat for several; change it later with s4mi clusters (default: the fitted map)",
    )


def cmd_train_seg(args: argparse.Namespace) -> int:
    from ..core.engine import load_run_config, train
    from ..core.errors import InputError
    from ..core.registry import make_config
    from ..core.runs import CONFIG_FILE

    if args.cross_view and args.init is None:
        raise InputError("--cross-view sets up --init ssl's pretraining: give --init ssl RUN with it")
    if args.masks is None and (args.mask_values or args.replace):
        raise InputError("--mask-values and --replace apply to an import: give --masks DIR with them")
    project = open_or_create_project(args.images, args.project, args.masks, args.out, args.mask_values, args.replace)
    # --init ssl before its segmentation run exists: (re)start the pipeline, whose pretraining resumes by itself
    from_ssl = args.init is not None and not (Path(args.out) / CONFIG_FILE).exists()
    if args.resume and not from_ssl:
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
            **augmentation_settings(args),
            "cuda_graphs": args.cuda_graphs,
            "clusters": args.clusters,
            "foreground_clusters": args.foreground_cluster,
        }
        config = make_config(SEG, args.method, args.preset, **overrides)
        if args.weights:
            config.set_weights(args.weights)
    if from_ssl:
        return _train_from_ssl(args, project, config)
    return run_with_ctrl_c(
        lambda cancel: train(
            project, config, args.out, cancel, resume=args.resume, init_from=args.init_from, restart=args.restart
        ),
        args.out,
    )


def _train_from_ssl(args: argparse.Namespace, project: Project, config: SegConfig) -> int:
    """``--init ssl RUN``: pretrain the encoders in RUN unless done there, then train from them."""
    from ..core.errors import InputError
    from ..core.ssl_init import train_with_ssl_init

    kind, run = args.init
    if kind != "ssl":
        raise InputError(f"--init {kind}: the only kind is ssl (--init ssl RUN); ImageNet or random: --weights")
    if args.init_from is not None:
        raise InputError("--init ssl and --init-from both set the starting weights: give one")
    pretraining = pretraining_settings(args)
    return run_with_ctrl_c(
        lambda cancel: train_with_ssl_init(
            project, config, args.out, Path(run), cancel, pretraining, restart=args.restart
        ),
        args.out,
    )
