"""DINO self-distillation (Caron et al. 2021): a student learns to match its EMA teacher over multi-crop views.

The teacher (no optimiser) sees the two global views and is updated after each step as an exponential moving
average of the student (momentum raised from ``teacher_momentum`` to 1 over the run). Its outputs are centred
(a running mean, also updated after each step) and sharpened (``teacher_temp``); the student sees every view
and is trained by cross-entropy to the teacher's distribution of the *other* global views. The teacher keeps the
network's name (its backbone is the one fine-tuning uses); the student is ``<name>_student``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping

import torch

from ..cls_config import DinoConfig
from ..models.classifiers import DinoNetwork
from .base import Batch
from .image_networks import ImageMethod, batch_spread


def dino_loss(student: list[torch.Tensor], teacher: list[torch.Tensor], center, t_student, t_teacher):
    """Mean cross-entropy of each student view against each teacher view of another crop."""
    targets = [torch.softmax((t.float() - center) / t_teacher, dim=-1) for t in teacher]
    logs = [torch.log_softmax(s.float() / t_student, dim=-1) for s in student]
    total, terms = 0.0, 0
    for i, target in enumerate(targets):
        for j, log_prob in enumerate(logs):
            if i == j:  # the same global crop
                continue
            total = total + (-target * log_prob).sum(dim=-1).mean()
            terms += 1
    return total / terms


class Dino(ImageMethod):
    config: DinoConfig

    def build(self, weights: str | None) -> None:
        (self.name,) = self.config.networks
        student = DinoNetwork(self.backbone(self.name, weights), self.config.out_dim)
        teacher = copy.deepcopy(student)
        teacher.requires_grad_(False)
        self.add_image_network(self.name, teacher)
        self.add_image_network(f"{self.name}_student", student)
        self._teacher_out: torch.Tensor | None = None

    def trainable(self) -> list[str]:
        return [f"{self.name}_student"]

    def losses(self, batch: Batch, scalars: Mapping) -> dict[str, torch.Tensor]:
        teacher = self.networks[self.name]
        globals_ = batch["global"].chunk(2)
        with torch.no_grad():  # the teacher in train mode, as DINO's: its head's BatchNorm uses batch statistics
            teacher.train()
            t_out = [self.run(self.name, x) for x in globals_]
        s_global = self.run(f"{self.name}_student", batch["global"]).chunk(2)
        s_local = list(self.run(f"{self.name}_student", batch["local"]).chunk(self.config.local_crops))
        center = teacher.head.center
        loss = dino_loss([*s_global, *s_local], t_out, center, self.config.student_temp, self.config.teacher_temp)
        self._teacher_out = torch.cat(t_out).detach().float()
        return {"loss": loss, "spread": batch_spread(self._teacher_out - center)}

    def momentum(self, step: int) -> float:
        """Cosine schedule from ``teacher_momentum`` to 1."""
        m = self.config.teacher_momentum
        return 1.0 - (1.0 - m) * (math.cos(math.pi * step / self.config.iterations) + 1) / 2

    @torch.no_grad()
    def after_step(self, step: int) -> None:
        teacher, student = self.networks[self.name], self.networks[f"{self.name}_student"]
        m = self.momentum(step)
        for t, s in zip(teacher.parameters(), student.parameters(), strict=True):
            t.mul_(m).add_(s.detach(), alpha=1.0 - m)
        if self._teacher_out is not None:
            c = self.config.center_momentum
            batch_center = self._teacher_out.mean(dim=0, keepdim=True)
            teacher.head.center.mul_(c).add_(batch_center, alpha=1.0 - c)

    @property
    def embedding_width(self) -> int:
        return self.config.out_dim

    @torch.no_grad()
    def embedding_spread(self, x: torch.Tensor) -> float:
        """The batch spread of the teacher's centred outputs (what centring and sharpening keep from collapsing:
        to one point, or to the uniform distribution)."""
        teacher = self.networks[self.name]
        teacher.train()
        return float(batch_spread(self.run(self.name, x) - teacher.head.center))

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The teacher's backbone features."""
        self.eval_mode()
        return {self.name: self.networks[self.name].backbone(x).float()}
