"""`s4mi predict`: a trained run of any task over a folder of slides (masks, or class probabilities and maps)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..core.config import DEVICES
from ..core.seg_config import LARGE_SLIDES


def add_predict_parser(commands: argparse._SubParsersAction) -> None:
    predict = commands.add_parser(
        "predict",
        help="predict masks or classes for a folder of slides",
        description="Predict with a trained run: segmentation runs write <stem>.png masks; classification runs "
        "write predictions.csv (and saliency maps).",
    )
    predict.add_argument("--run", type=Path, required=True, help="(required) a training run folder")
    predict.add_argument("--images", type=Path, required=True, help="(required) folder of slides")
    predict.add_argument("--out", type=Path, required=True, help="(required) output folder")
    predict.add_argument(
        "--with",
        dest="which",
        default="auto",
        help="the network to predict with (segmentation: cnn, swin; classification: cnn, vit), their mean, or "
        "auto: the run's best on validation (default: %(default)s)",
    )
    predict.add_argument("--device", choices=DEVICES, default="auto", help="(default: %(default)s)")
    predict.add_argument(
        "--strict",
        action="store_true",
        help="stop at the first slide that cannot be read (default: report it, skip it, predict the rest, and end "
        "with exit code 2)",
    )
    seg = predict.add_argument_group("segmentation runs")
    seg.add_argument("--disagreement", action="store_true", help="also write <stem>_disagreement.tif (default: off)")
    seg.add_argument(
        "--large-slides",
        choices=LARGE_SLIDES,
        default="tile",
        help="a slide over the run's tile threshold (960 px): cut into tiles as in training, or resized whole like the "
        "smaller training slides (the same field of view, e.g. dermoscopy photographs at a higher resolution than "
        "the training images) (default: %(default)s)",
    )
    cls = predict.add_argument_group("classification runs")
    cls.add_argument(
        "--saliency",
        nargs="?",
        const="",
        metavar="CLASS",
        help="also write <stem>_saliency.tif (float32 in [0, 1]) for CLASS (default class: each slide's predicted "
        "one); off unless given",
    )
    cls.add_argument(
        "--saliency-kind",
        choices=("gradient", "gradcam"),
        default="gradient",
        help="input-gradient map (any network) or Grad-CAM (the CNN) (default: %(default)s)",
    )


def cmd_predict(args: argparse.Namespace) -> int:
    from ..core.errors import InputError
    from ..core.io import list_slides
    from ..core.predictor import open_predictor

    slides = list_slides(args.images) if args.images.is_dir() else []
    if not slides:
        raise InputError(f"{args.images}: no PNG/JPEG/BMP/TIFF slides found; point --images at a folder of slides")
    predictor = open_predictor(args.run, which=args.which, device=args.device)
    options = predictor_options(predictor, args)  # an option the run's task does not take: refused first
    args.out.mkdir(parents=True, exist_ok=True)
    result = predictor.predict_folder(slides, args.out, **options)
    line = f"s4mi: predicted {result.written} of {result.total} slides with {predictor.which} into {args.out}"
    if result.skipped:
        line += f"; {len(result.skipped)} skipped (listed above): fix or remove them and predict again"
    print(line)
    return 2 if result.skipped else 0


DEFAULTS = {"disagreement": False, "saliency": None, "kind": "gradient", "large_slides": "tile"}  # the flags' own


def predictor_options(predictor, args: argparse.Namespace) -> dict:
    """The command's options that this predictor's ``predict_folder`` takes; InputError for one given that it
    does not take."""
    import inspect

    from ..core.errors import InputError

    wanted = {
        "disagreement": args.disagreement,
        "saliency": args.saliency,
        "kind": args.saliency_kind,
        "strict": args.strict,
        "large_slides": args.large_slides,
    }
    accepted = inspect.signature(predictor.predict_folder).parameters
    for key, value in wanted.items():
        if key not in accepted and value != DEFAULTS.get(key, value):
            flag = "--saliency-kind" if key == "kind" else f"--{key.replace('_', '-')}"
            raise InputError(f"{flag} does not apply to a {predictor.config.task} run")
    return {key: value for key, value in wanted.items() if key in accepted}
