"""Supervised classification (fine-tuning): each network (a CNN, a ViT) gets a linear head and learns the labels.

Initialisation (``config.init``): ImageNet weights, random, or the backbones of a pretraining run (CASS, DINO) by
network name. Single-label: cross-entropy weighted by inverse class frequency; multi-label: per-class sigmoid with
BCE (positive weight negatives/positives) or focal loss, threshold ``config.threshold``. The weights come from
the run's labeled *training* slides only (``run_info['class_counts']``). Validation scores are per slide (the mean
of its tiles' probabilities); the best output (each network, or their mean) by macro F1 predicts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..cls_config import FinetuneConfig
from ..cls_metrics import class_weights, classification_report
from ..errors import InputError
from ..models.classifiers import Classifier, load_backbone
from ..models.weights import WeightsReport, is_imagenet_spec, is_random_spec
from .base import Batch, Evaluation
from .image_networks import ImageMethod


def pretrained_file(run_dir: Path, name: str) -> Path | None:
    """A pretraining run's saved network ``name`` (its last checkpoint first: pretraining has no validation)."""
    for folder in ("last", "best"):
        path = Path(run_dir) / folder / f"{name}.safetensors"
        if path.is_file():
            return path
    return None


def focal_bce(logits: torch.Tensor, target: torch.Tensor, gamma: float, pos_weight: torch.Tensor) -> torch.Tensor:
    """Focal loss (Lin et al.) on per-class sigmoids, positives weighted like BCE's pos_weight."""
    bce = nn.functional.binary_cross_entropy_with_logits(logits, target, pos_weight=pos_weight, reduction="none")
    p = torch.sigmoid(logits)
    p_true = p * target + (1 - p) * (1 - target)
    return ((1 - p_true) ** gamma * bce).mean()


class FineTune(ImageMethod):
    config: FinetuneConfig

    @property
    def classes(self) -> list[str]:
        return list(self.run_info["classes"])

    @property
    def multi_label(self) -> bool:
        return bool(self.run_info.get("multi_label", False))

    def build(self, weights: str | None) -> None:
        init = self.config.init
        from_run = weights is None and not (is_imagenet_spec(init) or is_random_spec(init))
        if weights is None:  # a new run (a predictor passes 'none' and loads its checkpoint)
            weights = "imagenet" if is_imagenet_spec(init) else "none"
        for name in self.config.networks:
            module = Classifier(self.backbone(name, weights, report=not from_run), len(self.classes))
            if from_run:
                self.reports.append(self._load_pretrained(module, name, Path(init)))
            self.add_image_network(name, module)
        counts = np.asarray(self.run_info.get("class_counts", [1.0] * len(self.classes)), np.float64)
        self.loss_weights = self._loss_weights(counts)

    def _load_pretrained(self, module: nn.Module, name: str, run_dir: Path) -> WeightsReport:
        path = pretrained_file(run_dir, name)
        if path is None:
            if not (run_dir / "config.json").is_file():
                raise InputError(f"{run_dir}: not a pretraining run folder; pass the --out of a pretraining")
            return WeightsReport("random", f"{name}: {run_dir.name} pretrained no '{name}'; random initialisation")
        loaded, total = load_backbone(module, path)
        return WeightsReport("file", f"{name}: backbone from {run_dir.name} ({loaded} tensors)", loaded, total)

    def _loss_weights(self, counts: np.ndarray) -> torch.Tensor | None:
        if not self.config.class_weighting:
            return None
        if self.multi_label:  # positives weighted by negatives / positives of each class, capped
            total = float(self.run_info.get("train_tiles", 1))
            ratio = np.clip((total - counts) / np.maximum(counts, 1.0), 0.1, 10.0)
            return torch.tensor(ratio, dtype=torch.float32, device=self.device)
        return torch.tensor(class_weights(counts), dtype=torch.float32, device=self.device)

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        if not self.multi_label:
            return nn.functional.cross_entropy(logits, target.long(), weight=self.loss_weights)
        if self.config.multilabel_loss == "focal":
            return focal_bce(logits, target.float(), self.config.focal_gamma, self.loss_weights)
        return nn.functional.binary_cross_entropy_with_logits(logits, target.float(), pos_weight=self.loss_weights)

    def losses(self, batch: Batch, scalars: Mapping) -> dict[str, torch.Tensor]:
        parts = {f"loss_{name}": self.loss(self.run(name, batch["image"]), batch["target"]) for name in self.networks}
        return {"loss": sum(parts.values()), **{k: v.detach() for k, v in parts.items()}}

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        return torch.sigmoid(logits) if self.multi_label else logits.softmax(dim=1)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Class probabilities of each network and, for two, of their mean."""
        from ..device import autocast

        self.eval_mode()
        with autocast(self.device, self.precision):
            probs = {name: self.probabilities(self.run(name, x)) for name in self.networks}
        if len(probs) == 2:
            first, second = probs.values()
            probs["mean"] = 0.5 * (first + second)
        return probs

    def evaluate(self, batches: Iterable[Batch]) -> Evaluation:
        """Per-slide macro F1, macro recall, AUROC, ... of each output; the best macro F1 is the primary metric."""
        probs: dict[str, list[np.ndarray]] = {}
        targets, slides = [], []
        for batch in batches:
            for name, p in self.predict(batch["image"]).items():
                probs.setdefault(name, []).append(p.cpu().numpy())
            targets.append(batch["target"].cpu().numpy())
            slides.append(batch["slide"].cpu().numpy())
        slide = np.concatenate(slides)
        target = per_slide(np.concatenate(targets).astype(np.float64), slide)
        if not self.multi_label:
            target = target.round().astype(np.int64)
        metrics, details = {}, {}
        for name, chunks in probs.items():
            report = classification_report(
                target, per_slide(np.concatenate(chunks), slide), self.multi_label, self.classes, self.config.threshold
            )
            metrics.update({f"{key}_{name}": value for key, value in report.scalars().items() if "/" not in key})
            details[f"report_{name}"] = report.details()
        candidates = [f"macro_f1_{name}" for name in probs]
        metric = max(candidates, key=lambda key: np.nan_to_num(metrics[key], nan=-1.0))
        return Evaluation(metrics, metric, metric.removeprefix("macro_f1_"), details)

    @property
    def default_output(self) -> str:
        return "mean" if len(self.networks) == 2 else next(iter(self.networks))


def per_slide(values: np.ndarray, slide: np.ndarray) -> np.ndarray:
    """The mean of the tiles' rows for each slide index 0..max (a slide's score from its tiles)."""
    n = int(slide.max()) + 1 if slide.size else 0
    sums = np.zeros((n, *values.shape[1:]), np.float64)
    np.add.at(sums, slide, values)
    counts = np.bincount(slide, minlength=n).reshape(n, *([1] * (values.ndim - 1)))
    return sums / np.maximum(counts, 1)
