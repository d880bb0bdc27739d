"""ISIC-2017 classification from 10% of the labels: CASS pretraining then fine-tuning, against supervised
training on the same 10% from the same initialisation (random here: no ImageNet weights can be had offline).

One CASS pretraining (cpu-small: ResNet-18 + ViT-Tiny at 128 px) on the training split's images without labels is
shared by the fine-tuning seeds; each seed draws its own stratified 10% subset and fine-tunes both arms the same
number of steps. The slides are split once, stratified and seeded (70/10/20); the score is macro F1 and macro
recall (balanced accuracy, the paper's ISIC "recall") of each run's chosen output on the test slides; mean and 95%
confidence interval (Student t) over seeds. A majority-class predictor scores macro recall 1/3 on three classes.
Needs ../shared/data/isic2017 (not run in CI).

    python benchmarks/isic_classification.py --data ../shared/data/isic2017 --out bench-out/isic-cls
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import numpy as np

from napari_s4mi.core.cls_metrics import classification_report
from napari_s4mi.core.cls_pipeline import plan_pipeline, run_pipeline
from napari_s4mi.core.engine import train
from napari_s4mi.core.events import Done, Stage, Validation
from napari_s4mi.core.predictor import open_predictor
from napari_s4mi.core.project import Project
from napari_s4mi.core.registry import make_config

T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def make_project(data: Path, out: Path) -> Project:
    """A project over the ISIC images with the 3-class labels and a stratified 70/10/20 split (seed 2017)."""
    project = Project.create(data / "images", project_dir=out / "project")
    if not project.labeled_ids():
        project.import_labels_csv(data / "labels" / "labels.csv")
    if not project.labeled_ids("test"):
        rng = np.random.default_rng(2017)
        with project._transaction():
            for name in project.label_classes:
                members = sorted(i for i in project.labeled_ids() if project.labels_of(i) == [name])
                order = [members[k] for k in rng.permutation(len(members))]
                n_val, n_test = round(0.1 * len(order)), round(0.2 * len(order))
                for k, slide_id in enumerate(order):
                    split = "val" if k < n_val else "test" if k < n_val + n_test else "train"
                    project.record(slide_id).split = split
    return project


def mean_ci(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% confidence interval (Student t)."""
    mean = statistics.mean(values)
    if len(values) < 2:
        return mean, float("nan")
    return mean, T_975[len(values) - 1] * statistics.stdev(values) / math.sqrt(len(values))


def test_scores(project: Project, run_dir: Path) -> dict[str, float]:
    predictor = open_predictor(run_dir)
    ids = project.labeled_ids("test")
    probs = []
    for slide_id in ids:
        with project.open_slide(slide_id) as slide:
            probs.append(predictor.predict(slide).probs)
    targets = np.array([predictor.classes.index(project.labels_of(i)[0]) for i in ids])
    report = classification_report(targets, np.stack(probs), False, predictor.classes)
    return {"macro_f1": report.macro_f1, "macro_recall": report.macro_recall, "with": predictor.which}


def log(events, label: str) -> None:
    started = time.perf_counter()
    for event in events:
        if isinstance(event, Stage):
            print(f"  {label}: {event.name}", flush=True)
        elif isinstance(event, Validation):
            print(f"  {label} step {event.step}: {event.metric} {event.score:.3f}", flush=True)
        elif isinstance(event, Done):
            print(f"  {label}: {event.run_dir.name} done at step {event.step}, {time.perf_counter() - started:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/isic2017"))
    parser.add_argument("--out", type=Path, default=Path("bench-out/isic-cls"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--pretrain-iterations", type=int, default=1500)
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--weights", default="none", help="initial weights of both arms (default: none = random)")
    args = parser.parse_args()
    project = make_project(args.data, args.out)
    print({s: len(project.labeled_ids(s)) for s in ("train", "val", "test")}, flush=True)
    pretrain_dir = args.out / "cass-pretrain"
    if not (pretrain_dir / "last").exists():  # one pretraining, shared by the seeds' fine-tunings
        config = make_config("pretraining", "cass", "cpu-small", iterations=args.pretrain_iterations, seed=0)
        config.set_weights(args.weights)
        log(train(project, config, pretrain_dir), "CASS pretraining")
    results: dict[str, list[dict]] = {}
    for seed in args.seeds:
        for arm in ("cass", "supervised"):
            run_dir = args.out / f"{arm}-{int(args.fraction * 100)}pct-seed{seed}"
            finetune = {"label_fraction": args.fraction, "seed": seed, "iterations": args.iterations}
            pipeline = plan_pipeline(arm, "cpu-small", finetune, pretrain_from=pretrain_dir if arm == "cass" else None)
            pipeline.finetune.init = str(pretrain_dir) if arm == "cass" else args.weights
            pipeline.finetune.set_weights(args.weights)
            if not (run_dir / "last").exists():
                log(run_pipeline(project, pipeline, run_dir), f"{arm} seed {seed}")
            scores = test_scores(project, run_dir)
            results.setdefault(arm, []).append({"seed": seed, **scores})
            print(f"{arm} seed {seed}: {scores}", flush=True)
            (args.out / "results.json").write_text(json.dumps(results, indent=2))
    print(
        "\n| arm | labels | seeds | macro F1 (mean ± 95% CI) | macro recall (mean ± 95% CI) | per seed (F1 / recall) |"
    )
    print("|---|---|---|---|---|---|")
    for arm, rows in results.items():
        f1, f1_ci = mean_ci([r["macro_f1"] for r in rows])
        rec, rec_ci = mean_ci([r["macro_recall"] for r in rows])
        per_seed = ", ".join(f"{r['macro_f1']:.3f} / {r['macro_recall']:.3f}" for r in rows)
        cells = [arm, f"{args.fraction:.0%}", str(len(rows)), f"{f1:.3f} ± {f1_ci:.3f}", f"{rec:.3f} ± {rec_ci:.3f}"]
        print(f"| {' | '.join(cells)} | {per_seed} |")


if __name__ == "__main__":
    main()
