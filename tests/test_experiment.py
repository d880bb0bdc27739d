"""`s4mi experiment`: the CI over seeds, seeded group-aware splits shared by every seed, nested label subsets, a
grid that resumes after an interruption without retraining finished runs, a label-free method at 0%, the report
files, classification with a pretraining shared by a seed's fractions, and the command line end to end."""

from __future__ import annotations

import csv
import json
import math
import os
import struct
from dataclasses import dataclass
from typing import ClassVar

import pytest
from conftest import REPO, TINY_CNN

from napari_s4mi.cli import main
from napari_s4mi.core import registry
from napari_s4mi.core.data import plan_data
from napari_s4mi.core.errors import InputError, TrainingError
from napari_s4mi.core.events import Checkpoint, Message, Progress
from napari_s4mi.core.experiment import DataSource, ExperimentSpec, SplitSpec, training
from napari_s4mi.core.experiment.prepare import prepare_projects
from napari_s4mi.core.experiment.report import write_report
from napari_s4mi.core.experiment.runner import GridDone, run_experiment
from napari_s4mi.core.experiment.spec import RunSpec, label_free, parse_part, select
from napari_s4mi.core.experiment.splits import groups_from_regex, read_split_file, split_slides
from napari_s4mi.core.experiment.stats import mean_ci
from napari_s4mi.core.project import Project
from napari_s4mi.core.seg_config import SupervisedSegConfig
from napari_s4mi.core.tasks.cls_plan import plan_classification

SAMPLE = REPO / "resources" / "sample"
SAMPLE_CLS = REPO / "resources" / "sample-cls"
SEG_DATA = DataSource(images=SAMPLE / "images", masks=SAMPLE / "masks")
CLS_DATA = DataSource(images=SAMPLE_CLS / "images", labels=SAMPLE_CLS / "labels.csv")
TINY_SEG = dict(
    iterations=2,
    input_size=64,
    labeled_batch=2,
    unlabeled_batch=2,
    precision="fp32",
    device="cpu",
    checkpoint_every=1,
    cnn=TINY_CNN,
)
TINY_CLI = ["--iterations", "2", "--input-size", "64", "--batch", "2", "--device", "cpu", "--precision", "fp32"]


# --------------------------------------------------------------------------------------------- statistics


def test_mean_ci_known_values():
    three = mean_ci([1.0, 2.0, 3.0])  # sd 1, t(0.975, 2) = 4.303
    assert (three.mean, three.sd, three.n) == (2.0, 1.0, 3)
    assert three.half == pytest.approx(4.302653 / math.sqrt(3)) and round(three.half, 3) == 2.484
    assert three.text() == "2.000 ± 2.484"
    five = mean_ci([0.70, 0.72, 0.74, 0.76, 0.78])  # sd 0.0316, t(0.975, 4) = 2.776
    assert five.half == pytest.approx(2.776445 * 0.0316228 / math.sqrt(5), rel=1e-5)
    one = mean_ci([0.5])  # one seed: no spread, documented as NaN
    assert one.mean == 0.5 and math.isnan(one.half) and math.isnan(one.sd) and one.text() == "0.500 (n=1)"
    assert one.to_dict() == {"mean": 0.5, "ci95": None, "sd": None, "n": 1}
    assert mean_ci([float("nan"), 1.0, None, 3.0]).n == 2  # non-finite values are left out
    assert mean_ci([]).n == 0 and mean_ci([]).text() == "–"


# --------------------------------------------------------------------------------------------- splits


def test_split_is_seeded_group_aware_and_stratified():
    ids = [f"p{k // 4:02d}_s{k % 4}.png" for k in range(200)]  # 50 patients of 4 slides
    groups = groups_from_regex(ids, r"^(p\d+)_")
    assert len(set(groups.values())) == 50
    first = split_slides(ids, (0.7, 0.1, 0.2), seed=3, groups=groups)
    assert first == split_slides(ids, (0.7, 0.1, 0.2), seed=3, groups=groups)  # seeded
    assert first != split_slides(ids, (0.7, 0.1, 0.2), seed=4, groups=groups)
    for patient in set(groups.values()):  # a patient's slides share one split
        assert len({first[i] for i in ids if groups[i] == patient}) == 1
    counts = {s: sum(v == s for v in first.values()) for s in ("train", "val", "test")}
    assert counts == {"train": 140, "val": 20, "test": 40}
    strata = {i: "rare" if k < 40 else "common" for k, i in enumerate(f"x{k}" for k in range(200))}
    stratified = split_slides(list(strata), (0.7, 0.1, 0.2), seed=0, strata=strata)
    rare_in_test = sum(stratified[i] == "test" for i, s in strata.items() if s == "rare")
    assert rare_in_test == 8  # 20% of the 40 rare slides
    tiny = split_slides(["a", "b", "c"], (0.7, 0.1, 0.2), seed=0)
    assert sorted(tiny.values()) == ["test", "train", "val"]


def test_split_file_and_its_errors(tmp_path):
    ids = ["a.png", "b.png", "c.png"]
    good = tmp_path / "split.csv"
    good.write_text("image_id,split\na,train\nb.png,test\nc,val\n")
    assert read_split_file(good, ids) == {"a.png": "train", "b.png": "test", "c.png": "val"}
    bad = tmp_path / "bad.csv"
    bad.write_text("image_id,split\na,train\nb,exam\n")
    with pytest.raises(InputError, match="row 3: split 'exam'"):
        read_split_file(bad, ids)
    short = tmp_path / "short.csv"
    short.write_text("image_id,split\na,train\n")
    with pytest.raises(InputError, match="2 slide"):
        read_split_file(short, ids)
    with pytest.raises(InputError, match="70/10/20"):
        SplitSpec(0.5, 0.1, 0.1).check()


def test_project_split_is_the_same_for_every_seed_unless_asked(tmp_path):
    groups = tmp_path / "groups.csv"
    groups.write_text("image_id,group\nISIC_0000112,g1\nISIC_0000113,g1\nISIC_0000116,g1\n")
    shared = SplitSpec(groups_csv=str(groups))
    info = prepare_projects(SEG_DATA, "segmentation", shared, (0, 1, 2), tmp_path / "one")
    assert list(info) == ["project"] and info["project"]["slides"] == {"train": 7, "val": 1, "test": 2}
    project = Project.open(tmp_path / "one" / "project")
    split = {r.id: r.split for r in project.slides}
    assert len({split[f"ISIC_00001{n}.jpg"] for n in (12, 13, 16)}) == 1  # the group stays together
    again = prepare_projects(SEG_DATA, "segmentation", shared, (0, 1, 2), tmp_path / "two")
    assert again["project"]["data_hash"] == info["project"]["data_hash"]  # same data, same seed: same split
    per_seed = prepare_projects(SEG_DATA, "segmentation", SplitSpec(per_seed=True), (0, 1), tmp_path / "per")
    assert list(per_seed) == ["project-seed0", "project-seed1"]
    splits = [{r.id: r.split for r in Project.open(tmp_path / "per" / n).slides} for n in per_seed]
    assert splits[0] != splits[1]
    assert not (SAMPLE / "images" / ".s4mi").exists()  # the slide folder is left alone


def test_label_subsets_are_nested_and_full_at_100(tmp_path):
    prepare_projects(SEG_DATA, "segmentation", SplitSpec(), (0,), tmp_path / "seg")
    project = Project.open(tmp_path / "seg" / "project", refresh=False)
    train = set(project.annotated_ids("train"))
    for seed in (0, 1):
        subsets = [set(plan_data(project, f, seed).labeled) for f in (0.1, 0.25, 0.5, 1.0)]
        assert all(a <= b for a, b in zip(subsets, subsets[1:], strict=False)) and subsets[-1] == train
        assert not subsets[-1] & set(project.annotated_ids("test") + project.annotated_ids("val"))
    assert plan_data(project, 0.5, 0).labeled != plan_data(project, 0.5, 1).labeled  # seeds draw their own
    prepare_projects(CLS_DATA, "classification", SplitSpec(), (0,), tmp_path / "cls")
    cls_project = Project.open(tmp_path / "cls" / "project", refresh=False)
    labeled_train = set(cls_project.labeled_ids("train"))
    for seed in (0, 1):
        subsets = [set(plan_classification(cls_project, f, seed, 0.2).labeled) for f in (0.1, 0.5, 1.0)]
        assert subsets[0] <= subsets[1] <= subsets[2] == labeled_train
        assert plan_classification(cls_project, 0.1, seed, 0.2).pretraining_pool == sorted(labeled_train)


# --------------------------------------------------------------------------------------------- grid


@dataclass
class LabelFreeConfig(SupervisedSegConfig):
    """A stand-in for a label-free method such as PiCIE (trained like supervised here, on its default labels)."""

    label_free: ClassVar[bool] = True
    method: str = "toy-label-free"


@dataclass
class NoLabelsConfig(SupervisedSegConfig):
    uses_labels: ClassVar[bool] = False  # PiCIE's way of saying it
    method: str = "toy-no-labels"


@pytest.fixture
def label_free_method():
    entry = registry.MethodEntry(
        "toy-label-free", "segmentation", LabelFreeConfig, "napari_s4mi.core.methods.supervised_seg:SupervisedSeg"
    )
    registry.register_method(entry)
    yield entry.name
    registry.unregister_method("segmentation", entry.name)


def test_grid_names_parts_and_label_free_methods(label_free_method):
    spec = ExperimentSpec("seg", methods=("supervised", label_free_method), fractions=(0.1, 1.0), seeds=(0, 1))
    spec = spec.resolved()
    names = [r.name for r in spec.grid()]
    assert names == [
        "supervised-10-seed0",
        "supervised-100-seed0",
        "toy-label-free-0-seed0",
        "supervised-10-seed1",
        "supervised-100-seed1",
        "toy-label-free-0-seed1",
    ]
    assert [r.name for r in select(spec, only=("*-seed1",))] == names[3:]
    parts = [select(spec, part=(i, 3)) for i in (1, 2, 3)]
    assert sorted(r.name for p in parts for r in p) == sorted(names) and all(len(p) == 2 for p in parts)
    assert parse_part("2/3") == (2, 3)
    with pytest.raises(InputError, match="between 1 and n"):
        parse_part("4/3")
    cls = ExperimentSpec("cls", methods=("supervised", "cass"), fractions=(0.1, 0.5), seeds=(0, 1)).resolved()
    cls_parts = [select(cls, part=(i, 2)) for i in (1, 2)]
    for part in cls_parts:  # the fine-tunings of one pretraining stay in one part
        assert len({r.seed for r in part if r.method == "cass"}) <= 1
    assert RunSpec("cass", 0.005, 3).name == "cass-0.5-seed3"
    paper = ExperimentSpec("seg", preset="paper").resolved()
    assert paper.fractions == (0.01, 0.05, 0.1, 0.25, 0.5, 1.0) and paper.seeds == (0, 1, 2, 3, 4)
    assert paper.overrides == {}
    small = ExperimentSpec("seg").resolved()
    assert small.fractions == (0.1, 0.5, 1.0) and small.seeds == (0, 1, 2) and small.overrides["iterations"] == 300
    assert {"supervised", "cross-teaching", label_free_method} <= set(small.methods)  # from the registry
    entry = registry.MethodEntry("toy-no-labels", "segmentation", NoLabelsConfig, "unused:Unused")
    registry.register_method(entry)
    try:
        assert label_free("segmentation", "toy-no-labels") and not label_free("segmentation", "supervised")
    finally:
        registry.unregister_method("segmentation", entry.name)
    if "picie" in registry.method_names("segmentation"):
        assert label_free("segmentation", "picie")


def test_interrupted_grid_resumes_without_retraining_finished_runs(tmp_path, label_free_method):
    out = tmp_path / "exp"
    spec = ExperimentSpec(
        "seg", methods=("supervised", label_free_method), fractions=(0.5, 1.0), seeds=(0,), overrides=TINY_SEG
    )
    spec.weights = "none"
    seen = []
    with pytest.raises(KeyboardInterrupt):
        for item in run_experiment(spec, out, SEG_DATA):
            if isinstance(item, GridDone):
                continue
            seen.append((item.index, item.kind))
            if item.index == 2 and isinstance(item.event, Progress) and item.event.step == 1:
                assert item.describe() == "run 2/3: supervised 100% seed 0 — step 1/2"
            if item.index == 2 and isinstance(item.event, Checkpoint) and item.event.step == 1:
                raise KeyboardInterrupt  # Ctrl-C in the middle of the second run, after its first checkpoint
    assert (1, "done") in seen and not (out / "runs" / "supervised-100-seed0" / "result.json").exists()
    first = out / "runs" / "supervised-50-seed0"
    stamps = {p: p.stat().st_mtime_ns for p in (first / "result.json", first / "last" / "state.json")}
    kept = (first / "result.json").read_text()

    items = list(run_experiment(spec, out, SEG_DATA))
    done = items[-1]
    assert isinstance(done, GridDone) and (done.trained, done.skipped, done.stopped) == (2, 1, False)
    assert [(i.index, i.kind) for i in items if not isinstance(i, GridDone) and i.kind != "train"][:1] == [(1, "skip")]
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps and (first / "result.json").read_text() == kept
    texts = [i.event.text for i in items if not isinstance(i, GridDone) and isinstance(i.event, Message)]
    assert any("resuming supervised-100-seed0 at step 1" in t for t in texts)

    results = {r["name"]: r for r in json.loads((out / "results.json").read_text())["runs"]}
    assert set(results) == {"supervised-50-seed0", "supervised-100-seed0", f"{label_free_method}-0-seed0"}
    full, half = results["supervised-100-seed0"], results["supervised-50-seed0"]
    assert full["resumed"] and not half["resumed"] and full["test_slides"] == 2
    assert set(full["metrics"]) == {"iou", "dice", "iou_per_image", "dice_per_image"}
    assert 0 <= full["metrics"]["iou"] <= full["metrics"]["dice"] <= 1
    assert full["params"]["total"] == full["params"]["networks"]["cnn"] > 1_000_000
    assert full["data_hash"] == half["data_hash"] and full["versions"]["torch"]
    assert full["config"]["label_fraction"] == 1.0 and full["config"]["iterations"] == 2
    labeled = {n: set(json.loads((out / "runs" / n / "config.json").read_text())["data"]["labeled"]) for n in results}
    project = Project.open(out / "project", refresh=False)
    assert labeled["supervised-50-seed0"] < labeled["supervised-100-seed0"] == set(project.annotated_ids("train"))
    assert results[f"{label_free_method}-0-seed0"]["fraction"] == 0.0

    table = (out / "table.md").read_text()
    assert "## IoU (pooled)" in table and "| method | params | 0% | 50% | 100% |" in table
    rows = list(csv.reader((out / "table.csv").open()))
    assert rows[0] == ["metric", "method", "params", "0%", "50%", "100%"]
    assert rows[1][:2] == ["iou", "supervised"] and rows[1][3] == "–" and "(n=1)" in rows[1][4]
    png = (out / "plot.png").read_bytes()
    width, height = struct.unpack(">II", png[16:24])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and width > 500 and height > 300

    changed = ExperimentSpec("seg", methods=("supervised",), fractions=(0.5,), seeds=(0,), overrides=TINY_SEG)
    with pytest.raises(InputError, match="other weights"):
        list(run_experiment(changed, out, SEG_DATA))


def test_a_failing_run_is_noted_and_the_grid_goes_on(tmp_path, monkeypatch):
    out = tmp_path / "exp"
    spec = ExperimentSpec("seg", methods=("supervised",), fractions=(0.5, 1.0), seeds=(0,), overrides=TINY_SEG)
    spec.weights = "none"
    real = training.train_events

    def flaky(spec, run, *args):
        if run.fraction == 0.5:
            raise TrainingError("the loss became nan at step 3: lower the learning rate (--lr)")
        return real(spec, run, *args)

    monkeypatch.setattr(training, "train_events", flaky)
    items = list(run_experiment(spec, out, SEG_DATA))
    done = items[-1]
    assert (done.trained, done.failed, done.stopped) == (1, 1, False)
    failed = next(i for i in items[:-1] if i.kind == "failed")
    assert failed.describe() == "run 1/2: supervised 50% seed 0 — failed: " + str(failed.error)
    note = json.loads((out / "runs" / "supervised-50-seed0" / "failed.json").read_text())
    assert note["error"].startswith("the loss became nan")
    report = json.loads((out / "results.json").read_text())
    assert [r["name"] for r in report["runs"]] == ["supervised-100-seed0"]
    assert [f["name"] for f in report["failed"]] == ["supervised-50-seed0"]

    def broken(spec, run, *args):
        raise TrainingError("out of memory")

    monkeypatch.setattr(training, "train_events", broken)
    again = [(i.run.name, i.kind) for i in run_experiment(spec, out, SEG_DATA) if not isinstance(i, GridDone)]
    assert again == [  # the failed run is tried again, the done one is not
        ("supervised-50-seed0", "start"),
        ("supervised-50-seed0", "failed"),
        ("supervised-100-seed0", "skip"),
    ]


def test_report_tables_three_seeds(tmp_path):
    out = tmp_path / "exp"
    prepare = {"settings": {"task": "classification", "preset": "cpu-small"}, "projects": {}}
    (out / "runs").mkdir(parents=True)
    (out / "experiment.json").write_text(json.dumps(prepare))
    for method, base in (("supervised", 0.5), ("cass", 0.6)):
        for fraction in (0.1, 1.0):
            for seed, delta in zip((0, 1, 2), (-0.01, 0.0, 0.01), strict=True):
                name = f"{method}-{fraction * 100:g}-seed{seed}"
                metrics = {"macro_f1": base + fraction / 10 + delta, "micro_f1": 0.7, "macro_recall": 0.6}
                result = dict(name=name, method=method, fraction=fraction, seed=seed, metrics=metrics, test_slides=9)
                result["params"] = {"total": 27_000_000}
                (out / "runs" / name).mkdir()
                (out / "runs" / name / "result.json").write_text(json.dumps(result))
    written = write_report(out)
    assert [p.name for p in written] == ["results.json", "table.md", "table.csv", "plot.png"]
    rows = list(csv.reader((out / "table.csv").open()))
    assert rows[0] == ["metric", "method", "params", "10%", "100%"]
    assert rows[1] == ["macro_f1", "cass", "27.0M", "0.610 ± 0.025", "0.700 ± 0.025"]  # t 4.303 x 0.01 / sqrt 3
    summary = json.loads((out / "results.json").read_text())["summary"]["macro_f1"]["supervised"]["10"]
    assert (
        summary["n"] == 3
        and summary["mean"] == pytest.approx(0.51)
        and summary["ci95"] == pytest.approx(0.02484, abs=1e-5)
    )
    assert "| supervised | 27.0M | 0.510 ± 0.025 | 0.600 ± 0.025 |" in (out / "table.md").read_text()


def test_classification_grid_shares_a_pretraining_per_seed(tmp_path):
    out = tmp_path / "exp"
    overrides = dict(iterations=2, input_size=64, batch=4, device="cpu", precision="fp32", val_every=2)
    spec = ExperimentSpec("cls", methods=("cass",), fractions=(0.5, 1.0), seeds=(0,), overrides=overrides)
    spec.pretrain_overrides, spec.weights = {"iterations": 2}, "none"
    items = list(run_experiment(spec, out, CLS_DATA))
    assert isinstance(items[-1], GridDone) and items[-1].trained == 2
    stages = [(i.run.name, i.event.name) for i in items[:-1] if type(i.event).__name__ == "Stage"]
    assert ("cass-50-seed0", "pretraining") in stages and ("cass-100-seed0", "pretraining") not in stages
    pre = json.loads((out / "runs" / "pretrain-cass-seed0" / "config.json").read_text())
    project = Project.open(out / "project", refresh=False)
    held_out = set(project.labeled_ids("val") + project.labeled_ids("test"))
    assert set(pre["data"]["held_out"]) == held_out and not set(pre["data"]["pretraining"]) & held_out
    result = json.loads((out / "runs" / "cass-100-seed0" / "result.json").read_text())
    assert result["pretraining"]["run"] == "pretrain-cass-seed0" and result["test_slides"] == len(
        project.labeled_ids("test")
    )
    assert {"macro_f1", "micro_f1", "macro_recall"} <= set(result["metrics"])
    assert set(result["params"]["networks"]) == {"cnn", "vit"}
    assert "## macro F1" in (out / "table.md").read_text()


# --------------------------------------------------------------------------------------------- command line


def test_cli_end_to_end_and_one_line_errors(tmp_path, capsys):
    out = tmp_path / "exp"
    data = ["--images", str(SAMPLE / "images"), "--masks", str(SAMPLE / "masks")]
    grid = ["--methods", "supervised", "--fractions", "100", "--seeds", "0", "--weights", "none"]
    augment = ["--zoom", "0.7", "1.3", "--colour-jitter", "0.3"]
    assert main(["experiment", "--out", str(out), *data, *grid, *augment, *TINY_CLI]) == 0
    (run_config,) = (out / "runs").glob("*/config.json")
    trained_with = json.loads(run_config.read_text())["config"]
    assert (trained_with["zoom_min"], trained_with["zoom_max"], trained_with["colour_jitter"]) == (0.7, 1.3, 0.3)
    captured = capsys.readouterr()
    assert "run 1/1: supervised 100% seed 0" in captured.out and "test iou" in captured.out
    assert "experiment finished: 1 run(s) trained" in captured.out and "step" in captured.err  # the bar
    assert all((out / name).is_file() for name in ("results.json", "table.md", "table.csv", "plot.png"))
    assert main(["experiment", "--out", str(out), *data, *grid, *augment, *TINY_CLI]) == 0  # resumes: nothing to do
    assert "0 run(s) trained, 1 done already" in capsys.readouterr().out
    assert main(["experiment", "--out", str(out), "--report-only"]) == 0
    cls_data = ["--images", str(SAMPLE_CLS / "images"), "--labels", str(SAMPLE_CLS / "labels.csv")]
    assert main(["experiment", "--out", str(tmp_path / "cls"), *cls_data, *grid, *TINY_CLI]) == 0  # task from --labels
    assert "test macro_f1" in capsys.readouterr().out
    assert "| supervised |" in (tmp_path / "cls" / "table.md").read_text()

    for bad in (
        [*data, "--methods", "nonsense"],
        ["--images", str(SAMPLE / "images"), "--masks", str(tmp_path / "missing")],
        [*data, *grid, *augment, "--iterations", "3"],  # other settings in the same folder
        [*cls_data, *grid, "--zoom", "0.7", "1.3"],  # segmentation's augmentation on a classification grid
        [*data, *grid, "--cross-view"],  # a pretraining setting on a segmentation grid without --init ssl
    ):
        target = out if "--iterations" in bad else tmp_path / f"bad{len(bad)}"
        assert main(["experiment", "--out", str(target), *bad]) == 2
        err = capsys.readouterr().err
        assert err.startswith("s4mi: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert not os.path.exists(tmp_path / "bad4" / "runs")


def test_the_bar_restarts_its_clock_for_each_run(capsys):
    """Two runs of the same length: the second run's rate is its own, not counted from the first run's start."""
    import time

    from napari_s4mi.cli.experiment import _drive
    from napari_s4mi.core.events import Progress
    from napari_s4mi.core.experiment.runner import GridDone, GridEvent
    from napari_s4mi.core.experiment.spec import RunSpec

    def grid():
        for index, method in enumerate(("supervised", "cross-teaching"), start=1):
            run = RunSpec(method, 0.1, 0)
            for step in (1, 2):
                if index == 1 and step == 2:
                    time.sleep(1.0)  # the first run is slow
                yield GridEvent(index, 2, run, "train", Progress(step, 2, 0.5, {}, 0.0, 0.0))
        yield GridDone(REPO, 2, 0, False)

    assert isinstance(_drive(grid()), GridDone)
    last = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    assert "cross-teaching" in last and "2/2 [00:00<" in last, last
