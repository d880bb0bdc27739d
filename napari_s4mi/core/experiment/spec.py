"""What an experiment runs: methods x label fractions x seeds on one task, its presets, and the grid's parts.

Method names come from the registry, so a method registered later joins the default grid. A *label-free* method
(its config class sets ``uses_labels = False`` or ``label_free = True``, or its default ``label_fraction`` is 0,
e.g. PiCIE) runs once per seed at 0% labels instead of once per fraction. No torch here.

Presets (``--preset``; each also names the training preset of every method):

* ``cpu-small``: fractions 10/50/100%, seeds 0/1/2; segmentation 300 steps a run (validated at steps 150 and
  300), classification 200 fine-tuning steps after 500 pretraining steps. Sized for the ISIC-2017 segmentation grid
  (2000 slides at 256 px, 70/10/20: 1400 train, 200 val, 400 test) on a 2-core CPU within 3 h, from the measured
  1.3 s/step of cross-teaching and 1.0 s/step of supervised (README, fp32): steps 3 seeds x 3 fractions x 300 x
  (1.3 + 1.0) s = 6210 s; around the steps (loading the tiles, 2 validations on 200 slides, predicting the 400
  test slides), measured on a shared 2-core machine, so upper bounds: 120 s a cross-teaching run, 76 s a supervised
  one, 9 x 196 = 1764 s; PiCIE, when registered, 3 runs at 0% of about 300 x 1.3 + 120 = 510 s, 1530 s; preparing
  the project once (2000 masks imported, split, hashed) 25 s. Total 9529 s = 2.65 h, 12% under 3 h (2.2 h without
  PiCIE); CPUs with native bf16 run the steps faster.
* ``paper``: fractions 1/5/10/25/50/100%, seeds 0-4, every method's ``paper`` settings (for a GPU).
"""

from __future__ import annotations

import dataclasses
import fnmatch
from dataclasses import dataclass, field
from typing import Any

from ..config import PRESETS as TRAIN_PRESETS
from ..errors import InputError
from ..registry import method_entry, method_names, pretraining_methods
from ..seg_pretrain_config import SEG_PRETRAIN_METHOD

TASKS = {"seg": "segmentation", "cls": "classification"}
PAPER_FRACTIONS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0)


@dataclass(frozen=True)
class Preset:
    """An experiment preset: fractions, seeds and the settings it gives every run of a task ('pretraining': the
    pretraining runs of classification)."""

    name: str
    fractions: tuple[float, ...]
    seeds: tuple[int, ...]
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)


PRESETS = {
    "cpu-small": Preset(
        "cpu-small",
        (0.1, 0.5, 1.0),
        (0, 1, 2),
        {
            "segmentation": {"iterations": 300, "val_every": 150},
            "classification": {"iterations": 200},
            "pretraining": {"iterations": 500},
        },
    ),
    "paper": Preset("paper", PAPER_FRACTIONS, (0, 1, 2, 3, 4)),
}
assert set(PRESETS) == set(TRAIN_PRESETS)


def percent(fraction: float) -> str:
    """A label fraction as a percentage without trailing zeros: 0.1 -> '10', 0.005 -> '0.5'."""
    return f"{round(fraction * 100, 6):g}"


def task_methods(task: str) -> tuple[str, ...]:
    """The methods an experiment of ``task`` can run, in registry order (classification: the pretraining
    methods, each followed by fine-tuning, then the direct ones)."""
    if task == "classification":
        return pretraining_methods() + method_names("classification")
    return method_names(task)


def pretrains(task: str, method: str) -> bool:
    """Whether ``method`` starts with a self-supervised pretraining (classification's CASS, DINO)."""
    return task == "classification" and method in pretraining_methods()


def label_free(task: str, method: str) -> bool:
    """Whether a method learns without labels (trained once per seed at 0%; see the module docstring)."""
    if task != "segmentation":
        return False
    config = method_entry(task, method).config
    if getattr(config, "uses_labels", True) is False or getattr(config, "label_free", False):
        return True
    default = {f.name: f.default for f in dataclasses.fields(config)}.get("label_fraction")
    return isinstance(default, int | float) and default == 0


@dataclass(frozen=True)
class RunSpec:
    """One run of the grid."""

    method: str
    fraction: float  # 0 for a label-free method
    seed: int

    @property
    def name(self) -> str:
        """The run's folder name: ``<method>-<percent>-seed<k>``."""
        return f"{self.method}-{percent(self.fraction)}-seed{self.seed}"

    @property
    def label(self) -> str:
        return f"{self.method} {percent(self.fraction)}% seed {self.seed}"


@dataclass
class SplitSpec:
    """The slide-level train/val/test split: fractions, seed, groups, or a fixed split file."""

    train: float = 0.7
    val: float = 0.1
    test: float = 0.2
    seed: int = 0
    per_seed: bool = False  # a split per grid seed (seed + that seed) instead of one for all
    file: str | None = None  # CSV image_id,split: the split as given
    groups_csv: str | None = None  # CSV image_id,group
    group_regex: str | None = None  # group = the first capture group (else the match) of the file name

    def check(self) -> None:
        parts = (self.train, self.val, self.test)
        if min(parts) < 0 or self.train <= 0 or self.test <= 0 or abs(sum(parts) - 1) > 1e-6:
            raise InputError(
                f"split {self.train:g}/{self.val:g}/{self.test:g}: train and test must be positive, val not "
                "negative, and the three sum to 1 (e.g. 70/10/20)"
            )
        if self.file and (self.groups_csv or self.group_regex or self.per_seed):
            raise InputError("a split file fixes the split: drop --groups, --group-regex and --split-per-seed")
        if self.groups_csv and self.group_regex:
            raise InputError("give the groups once: --groups CSV or --group-regex REGEX, not both")

    def seed_for(self, seed: int) -> int:
        """The seed of the split a grid seed uses."""
        return self.seed + seed if self.per_seed else self.seed


@dataclass
class ExperimentSpec:
    """An experiment: ``task`` ('segmentation' or 'classification'), its grid, and the settings of every run.

    Empty ``methods``/``fractions``/``seeds`` take the preset's (every registered method). ``overrides`` are
    training settings (config fields or network names) given to each method that has them; ``pretrain_overrides``
    go to classification's pretraining runs; ``weights`` sets every network's initial weights."""

    task: str
    methods: tuple[str, ...] = ()
    fractions: tuple[float, ...] = ()
    seeds: tuple[int, ...] = ()
    preset: str = "cpu-small"
    overrides: dict[str, Any] = field(default_factory=dict)
    pretrain_overrides: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None
    split: SplitSpec = field(default_factory=SplitSpec)
    init: str | None = None  # segmentation: 'ssl' starts both encoders from a cass-seg pretraining per seed

    def resolved(self) -> ExperimentSpec:
        """A copy with the preset's defaults filled in and every setting checked (InputError, one line)."""
        task = TASKS.get(self.task, self.task)
        if task not in TASKS.values():
            raise InputError(f"task '{self.task}' unknown: use seg or cls")
        if self.preset not in PRESETS:
            raise InputError(f"preset '{self.preset}' unknown: use one of {', '.join(PRESETS)}")
        preset = PRESETS[self.preset]
        known = task_methods(task)
        methods = tuple(self.methods) or known
        unknown = [m for m in methods if m not in known]
        if unknown:
            raise InputError(f"method '{unknown[0]}' unknown for {task}: use one of {', '.join(known)}")
        fractions = tuple(sorted({float(f) for f in (self.fractions or preset.fractions)}))
        if not fractions or fractions[0] <= 0 or fractions[-1] > 1:
            raise InputError(f"label fractions must lie in (0, 100]%; got {', '.join(percent(f) for f in fractions)}")
        seeds = tuple(dict.fromkeys(int(s) for s in (self.seeds or preset.seeds)))
        overrides = preset.settings.get(task, {}) | dict(self.overrides)
        pretrain = preset.settings.get("pretraining", {}) | dict(self.pretrain_overrides)
        split = dataclasses.replace(self.split)
        split.check()
        if self.init not in (None, "ssl") or (self.init and task != "segmentation"):
            raise InputError(f"--init {self.init}: ssl, and for segmentation only (classification pretrains by method)")
        return dataclasses.replace(
            self,
            task=task,
            methods=tuple(dict.fromkeys(methods)),
            fractions=fractions,
            seeds=seeds,
            overrides=overrides,
            pretrain_overrides=pretrain,
            split=split,
        )

    def grid(self) -> list[RunSpec]:
        """Every run, seed by seed, then method by method, then fraction by fraction."""
        runs = []
        for seed in self.seeds:
            for method in self.methods:
                fractions = (0.0,) if label_free(self.task, method) else self.fractions
                runs.extend(RunSpec(method, fraction, seed) for fraction in fractions)
        return runs

    def ssl_init(self, run: RunSpec) -> bool:
        """Whether the run starts from its seed's ``cass-seg`` pretraining (a segmentation method with labels)."""
        return self.init == "ssl" and not label_free(self.task, run.method)

    def pretraining_dir(self, run: RunSpec) -> str | None:
        """The folder name of the pretraining the run starts from, if any (one per seed and method, or per seed)."""
        if pretrains(self.task, run.method):
            return f"pretrain-{run.method}-seed{run.seed}"
        return f"pretrain-{SEG_PRETRAIN_METHOD}-seed{run.seed}" if self.ssl_init(run) else None

    def unit(self, run: RunSpec) -> str:
        """What must run in one process: a run, or all runs that share one pretraining."""
        return self.pretraining_dir(run) or run.name

    def settings(self) -> dict[str, Any]:
        """What every run of the experiment shares: re-running the folder must not change it (the grid may)."""
        return {
            "task": self.task,
            "preset": self.preset,
            "overrides": self.overrides,
            "pretrain_overrides": self.pretrain_overrides if self.task == "classification" or self.init else {},
            "weights": self.weights,
            "split": dataclasses.asdict(self.split),
        } | ({"init": self.init} if self.init else {})


def parse_part(text: str) -> tuple[int, int]:
    """``'i/n'`` -> (i, n) with 1 <= i <= n."""
    try:
        index, count = (int(v) for v in text.split("/"))
    except ValueError:
        raise InputError(f"--part {text!r}: give i/n, e.g. 1/3") from None
    if not 1 <= index <= count:
        raise InputError(f"--part {text!r}: i must lie between 1 and n")
    return index, count


def select(spec: ExperimentSpec, only: tuple[str, ...] = (), part: tuple[int, int] | None = None) -> list[RunSpec]:
    """The runs of this invocation: those whose name matches a glob of ``only`` (all when empty), then part i of n
    (units dealt round-robin, so fine-tunings sharing a pretraining stay in one part)."""
    runs = [r for r in spec.grid() if not only or any(fnmatch.fnmatchcase(r.name, g) for g in only)]
    if only and not runs:
        raise InputError(f"--only {' '.join(only)}: no run of the grid matches (runs look like {spec.grid()[0].name})")
    if part is None:
        return runs
    units = list(dict.fromkeys(spec.unit(r) for r in runs))
    mine = {u for k, u in enumerate(units) if k % part[1] == part[0] - 1}
    return [r for r in runs if spec.unit(r) in mine]
