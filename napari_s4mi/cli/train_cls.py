"""`s4mi train cls`: classification from few labels: pretraining (CASS, DINO) then fine-tuning, or supervised."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..core.config import PRESETS
from .common import (
    CROSS_VIEW_HELP,
    add_data_arguments,
    add_device_arguments,
    open_or_create_project,
    pretraining_settings,
    run_with_ctrl_c,
)


def add_cls_parser(tasks: argparse._SubParsersAction) -> None:
    from ..core.cls_pipeline import pipeline_methods
    from ..core.registry import method_entry, pretraining_methods

    cls = tasks.add_parser(
        "cls",
        help="train classification (self-supervised pretraining, then fine-tuning)",
        description="Pretrain on every training-split slide without labels (CASS, DINO), then fine-tune a CNN "
        "and a ViT on a fraction of the labeled slides; or train them supervised from ImageNet weights.",
    )
    source = add_data_arguments(cls)
    source.add_argument(
        "--labels",
        type=Path,
        help="CSV of class labels to import: image_id,label (names; ';' between several) or one-hot/multi-hot "
        "columns (default: the project's labels)",
    )
    source.add_argument("--multi-label", action="store_true", help="several labels per slide (default: one)")
    source.add_argument(
        "--none-class", help="name of the class of all-zero one-hot rows, e.g. nevus for ISIC-2017 (default: none)"
    )
    methods, pretraining = pipeline_methods(), pretraining_methods()
    summaries = "; ".join(
        f"{name}: {method_entry('pretraining' if name in pretraining else 'classification', name).summary}"
        for name in methods
    )
    cls.add_argument("--method", choices=methods, default=methods[0], help=f"{summaries} (default: {methods[0]})")
    cls.add_argument(
        "--preset", choices=PRESETS, default=PRESETS[0], help="settings to start from (default: %(default)s)"
    )
    cls.add_argument(
        "--label-fraction", type=float, help="fraction of the labeled training slides used (stratified) (default: 1.0)"
    )
    cls.add_argument("--seed", type=int, help="seed of the split, subset, init and batches (default: 0)")
    cls.add_argument("--iterations", type=int, help="fine-tuning steps (default: the preset's; cpu-small: 600)")
    cls.add_argument("--pretrain-iterations", type=int, help="pretraining steps (default: cpu-small: 1500)")
    cls.add_argument(
        "--cross-view",
        action="store_true",
        help=CROSS_VIEW_HELP,
    )
    cls.add_argument("--input-size", type=int, help="network input, a multiple of 32 (default: cpu-small 128)")
    cls.add_argument("--batch", type=int, help="images per step (default: 16)")
    cls.add_argument("--lr", type=float, help="fine-tuning learning rate (default: 3.6e-4)")
    cls.add_argument("--val-every", type=int, help="fine-tuning steps between validations (default: 100)")
    cls.add_argument(
        "--pretrain-from",
        type=Path,
        help="reuse a finished pretraining (a run folder or its pipeline's --out) (default: pretrain anew)",
    )
    add_device_arguments(cls)


def cmd_train_cls(args: argparse.Namespace) -> int:
    from ..core.cls_pipeline import PRETRAIN_DIR, plan_pipeline, run_pipeline

    project = open_or_create_project(args.images, args.project, None, args.out)
    if args.labels is not None:
        summary = project.import_labels_csv(
            args.labels, mode="multi" if args.multi_label else None, none_class=args.none_class
        )
        print(f"s4mi: {summary}")
    finetune = {
        "label_fraction": args.label_fraction,
        "seed": args.seed,
        "iterations": args.iterations,
        "input_size": args.input_size,
        "batch": args.batch,
        "lr": args.lr,
        "val_every": args.val_every,
        "device": args.device,
        "precision": args.precision,
        "cuda_graphs": args.cuda_graphs,
    }
    pretrain_from = args.pretrain_from
    if pretrain_from is not None and (pretrain_from / PRETRAIN_DIR).is_dir():
        pretrain_from = pretrain_from / PRETRAIN_DIR
    pipeline = plan_pipeline(args.method, args.preset, finetune, pretraining_settings(args), pretrain_from)
    if args.weights:
        for config in (pipeline.finetune, pipeline.pretraining):
            if config is not None:
                config.set_weights(args.weights)
    return run_with_ctrl_c(
        lambda cancel: run_pipeline(project, pipeline, args.out, cancel, resume=args.resume, restart=args.restart),
        args.out,
    )
