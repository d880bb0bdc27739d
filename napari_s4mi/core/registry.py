"""The one registry of tasks and methods: name -> config class, method class, task.

The CLI's choices, the Train form's fields and the predictor's dispatch all come from here; nothing else branches
on method names. Classes may be given as ``"module:Class"`` strings, imported on first use, so that the CLI and the
GUI read the registry without importing torch. A new method registers itself with :func:`register_method` (a
test or a plugin can do so from its own file) and is trained by the same engine.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from .config import TrainConfig
from .errors import TrainingError

ClassRef = type | str


def _resolve(ref: ClassRef) -> Any:
    if not isinstance(ref, str):
        return ref
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class TaskEntry:
    """A kind of learning problem: how a project becomes training data, and how a trained run predicts."""

    name: str
    data: ClassRef  # a TrainingData subclass: ``data(project, config)``
    predictor: ClassRef | None = None  # ``predictor(run: predictor.TrainedRun, which=...)``

    def data_class(self) -> type:
        return _resolve(self.data)

    def predictor_class(self) -> type:
        if self.predictor is None:
            raise TrainingError(f"task '{self.name}' has no predictor")
        return _resolve(self.predictor)


@dataclass(frozen=True)
class MethodEntry:
    """A training method: its name within its task, its config class and its Method class."""

    name: str
    task: str
    config: type[TrainConfig]
    method: ClassRef  # a Method subclass: ``method(config, run_info, device, precision, weights=None)``
    summary: str = ""
    data: ClassRef | None = None  # the method's own TrainingData, when its task's does not fit (e.g. no labels)

    def method_class(self) -> type:
        return _resolve(self.method)


_TASKS: dict[str, TaskEntry] = {}
_METHODS: dict[tuple[str, str], MethodEntry] = {}


def register_task(entry: TaskEntry) -> TaskEntry:
    _TASKS[entry.name] = entry
    return entry


def register_method(entry: MethodEntry) -> MethodEntry:
    if entry.task not in _TASKS:
        raise TrainingError(f"method '{entry.name}': register its task '{entry.task}' first")
    if entry.config.task != entry.task:
        raise TrainingError(f"method '{entry.name}': its config class belongs to task '{entry.config.task}'")
    _METHODS[(entry.task, entry.name)] = entry
    return entry


def unregister_method(task: str, name: str) -> None:
    _METHODS.pop((task, name), None)


def unregister_task(name: str) -> None:
    """Remove a task and its methods (tests and plugins that registered their own)."""
    _TASKS.pop(name, None)
    for key in [k for k in _METHODS if k[0] == name]:
        del _METHODS[key]


def task_entry(name: str) -> TaskEntry:
    if name not in _TASKS:
        raise TrainingError(f"task '{name}' unknown: use one of {', '.join(_TASKS)}")
    return _TASKS[name]


def method_names(task: str) -> tuple[str, ...]:
    """The methods of a task, in registration order (the first is the default)."""
    return tuple(name for (t, name) in _METHODS if t == task)


def pretraining_methods(prepares: str = "classification") -> tuple[str, ...]:
    """The pretraining methods that prepare ``prepares`` (classification: CASS, DINO; segmentation: cass-seg)."""
    return tuple(
        n
        for n in method_names("pretraining")
        if getattr(_METHODS[("pretraining", n)].config, "prepares", "classification") == prepares
    )


def method_entry(task: str, name: str) -> MethodEntry:
    if (task, name) not in _METHODS:
        choices = ", ".join(method_names(task)) or "none registered"
        raise TrainingError(f"method '{name}' unknown for {task}: use one of {choices}")
    return _METHODS[(task, name)]


def entry_for(config: TrainConfig) -> MethodEntry:
    """The registry entry of a config's method."""
    return method_entry(config.task, config.method)


def data_class_for(config: TrainConfig) -> type:
    """The TrainingData class of a config's method: the method's own, else its task's."""
    entry = entry_for(config)
    return _resolve(entry.data) if entry.data is not None else task_entry(config.task).data_class()


def make_config(task: str, method: str, preset: str = "cpu-small", **overrides: Any) -> TrainConfig:
    """A validated config: the method's preset, then ``overrides`` by field or network name (None ignored)."""
    config = method_entry(task, method).config.for_preset(preset)
    return config.override(**overrides).validate()


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    """The config saved in a run's config.json (runs from before tasks existed are segmentation runs)."""
    entry = method_entry(data.get("task") or "segmentation", data.get("method", ""))
    return entry.config.from_dict(data)


def _register_builtins() -> None:
    from .picie_config import PicieConfig
    from .seg_config import CrossTeachingConfig, SupervisedSegConfig

    register_task(
        TaskEntry(
            "segmentation",
            data="napari_s4mi.core.tasks.segmentation:SegmentationData",
            predictor="napari_s4mi.core.tasks.seg_predictor:SegPredictor",
        )
    )
    register_method(
        MethodEntry(
            "cross-teaching",
            "segmentation",
            CrossTeachingConfig,
            "napari_s4mi.core.methods.cross_teaching:CrossTeaching",
            "a CNN U-Net and a Swin-UNet teach each other on unlabeled slides (semi-supervised)",
        )
    )
    register_method(
        MethodEntry(
            "supervised",
            "segmentation",
            SupervisedSegConfig,
            "napari_s4mi.core.methods.supervised_seg:SupervisedSeg",
            "one U-Net on the labeled slides only (transfer-learning baseline)",
        )
    )
    register_method(
        MethodEntry(
            "picie",
            "segmentation",
            PicieConfig,
            "napari_s4mi.core.methods.picie:Picie",
            "PiCIE: pixel features clustered without labels; validation masks map the clusters to classes",
            data="napari_s4mi.core.tasks.picie_data:PicieData",
        )
    )


_register_builtins()


def _register_classification() -> None:
    from .cls_config import CassConfig, DinoConfig, FinetuneConfig
    from .seg_pretrain_config import SEG_PRETRAIN_METHOD, SegPretrainConfig

    register_task(
        TaskEntry(
            "classification",
            data="napari_s4mi.core.tasks.classification:ClassificationData",
            predictor="napari_s4mi.core.tasks.cls_predictor:ClsPredictor",
        )
    )
    register_task(TaskEntry("pretraining", data="napari_s4mi.core.tasks.classification:PretrainingData"))
    register_method(
        MethodEntry(
            "supervised",
            "classification",
            FinetuneConfig,
            "napari_s4mi.core.methods.classifier:FineTune",
            "a CNN and a ViT fine-tuned on the labeled slides (from ImageNet, random or a pretraining)",
        )
    )
    register_method(
        MethodEntry(
            "cass",
            "pretraining",
            CassConfig,
            "napari_s4mi.core.methods.cass:Cass",
            "CASS: a CNN and a ViT trained to agree on unlabeled slides, then fine-tuned",
        )
    )
    register_method(
        MethodEntry(
            "dino",
            "pretraining",
            DinoConfig,
            "napari_s4mi.core.methods.dino:Dino",
            "DINO: a ViT student distilled from its EMA teacher on unlabeled slides, then fine-tuned",
        )
    )
    register_method(
        MethodEntry(
            SEG_PRETRAIN_METHOD,
            "pretraining",
            SegPretrainConfig,
            "napari_s4mi.core.methods.cass_seg:CassSeg",
            "CASS on the U-Net's and the Swin-UNet's encoders, to start segmentation from (--init ssl RUN)",
            data="napari_s4mi.core.tasks.seg_pretraining_data:SegPretrainingData",
        )
    )


_register_classification()
