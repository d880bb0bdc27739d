"""The Method contract is the extension point: a toy task and method registered from this file alone train
through the same engine, with events, validation, cancel, checkpoints and an exact resume, without engine changes.

The toy is a tiny classifier on random tensors with an EMA teacher that has no optimiser (as DINO's teacher)."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from torch import nn

from napari_s4mi.core import registry
from napari_s4mi.core.config import TrainConfig
from napari_s4mi.core.engine import load_run_config, train
from napari_s4mi.core.events import CancelToken, Checkpoint, Done, Progress, Validation
from napari_s4mi.core.methods.base import Evaluation, Method
from napari_s4mi.core.predictor import read_trained_run
from napari_s4mi.core.tasks.base import TrainingData

TASK = "toy-task"


@dataclass
class ToyConfig(TrainConfig):
    task: ClassVar[str] = TASK

    method: str = "toy"
    iterations: int = 6
    val_every: int = 3
    checkpoint_every: int = 2
    device: str = "cpu"
    precision: str = "fp32"
    lr: float = 0.05
    batch: int = 8
    ema: float = 0.5
    networks: dict[str, dict[str, Any]] = field(default_factory=lambda: {"student": {"width": 16}, "teacher": {}})


class ToyData(TrainingData):
    """64 random 4-vectors, class = sign of the first coordinate; 16 more for validation."""

    def __init__(self, project, config: ToyConfig):
        rng = np.random.default_rng(123)
        self.x = rng.normal(size=(80, 4)).astype(np.float32)
        self.y = (self.x[:, 0] > 0).astype(np.int64)
        self.config = config
        self.messages = ["toy data: 64 training and 16 validation vectors"]

    def roles(self) -> dict[str, list[str]]:
        return {"train": [str(i) for i in range(64)], "val": [str(i) for i in range(64, 80)]}

    def run_info(self) -> dict[str, Any]:
        return {"classes": ["negative", "positive"]}

    def batch(self, step: int) -> dict[str, np.ndarray]:
        index = np.random.default_rng([self.config.seed, step]).integers(0, 64, self.config.batch)
        return {"x": self.x[index], "y": self.y[index]}

    def to_device(self, batch, device) -> dict[str, torch.Tensor]:
        return {key: torch.from_numpy(value).to(device) for key, value in batch.items()}

    @property
    def has_validation(self) -> bool:
        return True

    def validation_batches(self, device):
        yield {"x": torch.from_numpy(self.x[64:]).to(device), "y": torch.from_numpy(self.y[64:]).to(device)}


class ToyMethod(Method):
    """A student MLP trained with cross-entropy; a teacher that follows it by EMA after each step."""

    config: ToyConfig

    def build(self, weights: str | None) -> None:
        width = self.config.networks["student"]["width"]
        student = nn.Sequential(nn.Linear(4, width), nn.ReLU(), nn.Linear(width, 2))
        self.add_network("student", student)
        teacher = self.add_network("teacher", copy.deepcopy(student))
        teacher.requires_grad_(False)

    def trainable(self) -> list[str]:
        return ["student"]

    def losses(self, batch: Mapping[str, torch.Tensor], scalars) -> dict[str, torch.Tensor]:
        return {"loss": nn.functional.cross_entropy(self.networks["student"](batch["x"]), batch["y"])}

    @torch.no_grad()
    def after_step(self, step: int) -> None:
        for t, s in zip(self.networks["teacher"].parameters(), self.networks["student"].parameters(), strict=True):
            t.mul_(self.config.ema).add_(s, alpha=1 - self.config.ema)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self.eval_mode()
        return {name: net(x).softmax(dim=1) for name, net in self.networks.items()}

    def evaluate(self, batches: Iterable[Mapping[str, torch.Tensor]]) -> Evaluation:
        right: dict[str, int] = {}
        total = 0
        for batch in batches:
            total += len(batch["y"])
            for name, probs in self.predict(batch["x"]).items():
                right[name] = right.get(name, 0) + int((probs.argmax(dim=1) == batch["y"]).sum())
        metrics = {f"accuracy_{name}": count / total for name, count in right.items()}
        metric = max(metrics, key=metrics.__getitem__)
        return Evaluation(metrics, metric, metric.removeprefix("accuracy_"))


@pytest.fixture
def toy_registered():
    registry.register_task(registry.TaskEntry(TASK, data=ToyData))
    registry.register_method(registry.MethodEntry("toy", TASK, ToyConfig, ToyMethod, "a toy classifier"))
    yield
    registry.unregister_task(TASK)


def losses(events) -> list[float]:
    return [e.loss for e in events if isinstance(e, Progress)]


def test_a_registered_toy_method_trains_cancels_and_resumes(toy_registered, sample_project, tmp_path):
    straight = list(train(sample_project, ToyConfig(), tmp_path / "straight"))
    done = straight[-1]
    assert isinstance(done, Done) and done.step == 6 and not done.cancelled
    assert losses(straight)[-1] < losses(straight)[0]
    validations = [e for e in straight if isinstance(e, Validation)]
    assert [v.step for v in validations] == [3, 6]
    assert validations[0].metric.startswith("accuracy_") and validations[0].best
    assert done.best is not None and done.best.network in ("student", "teacher")
    assert {c.kind for c in straight if isinstance(c, Checkpoint)} == {"last", "best"}
    # the teacher is saved but has no optimiser
    state = read_trained_run(tmp_path / "straight", device="cpu").state
    assert state["networks"] == ["student", "teacher"] and list(state["optimizers"]) == ["student"]
    assert isinstance(load_run_config(tmp_path / "straight"), ToyConfig)

    cancel = CancelToken()
    first = []
    for event in train(sample_project, ToyConfig(), tmp_path / "stopped", cancel):
        first.append(event)
        if isinstance(event, Progress) and event.step == 3:
            cancel.cancel()
    assert isinstance(first[-1], Done) and first[-1].cancelled and first[-1].step == 3
    resumed = list(train(sample_project, ToyConfig(), tmp_path / "stopped", resume=True))
    assert resumed[-1].step == 6 and not resumed[-1].cancelled
    assert losses(first) + losses(resumed) == pytest.approx(losses(straight), rel=1e-6)


def test_the_teacher_moves_only_through_after_step(toy_registered):
    method = ToyMethod(ToyConfig(), {"classes": ["n", "p"]}, torch.device("cpu"), "fp32")
    assert list(method.optimizers) == ["student"]
    teacher_before = [p.clone() for p in method.networks["teacher"].parameters()]
    batch = {"x": torch.randn(8, 4), "y": torch.randint(0, 2, (8,))}
    method.train_step(0, batch)
    moved = [
        not torch.equal(a, b) for a, b in zip(teacher_before, method.networks["teacher"].parameters(), strict=True)
    ]
    assert all(moved) and all(p.grad is None for p in method.networks["teacher"].parameters())


def test_unknown_methods_name_the_choices():
    from napari_s4mi.core.errors import TrainingError

    with pytest.raises(TrainingError, match="cross-teaching, supervised"):
        registry.make_config("segmentation", "nonsense")
