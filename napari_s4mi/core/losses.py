"""Segmentation losses of the S4MI / cross-teaching recipe."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """1 − mean over classes of the soft Dice between softmax(logits) and one-hot target, pooled over the batch."""
    num_classes = logits.shape[1]
    probs = logits.float().softmax(dim=1)
    one_hot = F.one_hot(target.long(), num_classes).permute(0, 3, 1, 2).to(probs.dtype)
    dims = (0, 2, 3)
    intersection = (probs * one_hot).sum(dims)
    denominator = probs.pow(2).sum(dims) + one_hot.sum(dims)
    dice = (2 * intersection + eps) / (denominator + eps)
    return 1.0 - dice.mean()


def supervised_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """½ (cross-entropy + Dice) against the mask."""
    return 0.5 * (F.cross_entropy(logits.float(), target.long()) + soft_dice_loss(logits, target))


def cross_teaching_loss(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """Dice of each network against the other's detached argmax (Luo et al. 2022), summed."""
    pseudo_a = logits_a.detach().argmax(dim=1)
    pseudo_b = logits_b.detach().argmax(dim=1)
    return soft_dice_loss(logits_a, pseudo_b) + soft_dice_loss(logits_b, pseudo_a)


def consistency_weight(step: int, total: int, lambda_max: float, rampup_fraction: float) -> float:
    """λ(t) = λ_max · exp(−5 (1 − min(t / T_r, 1))²) with T_r = rampup_fraction · total."""
    rampup = max(rampup_fraction * total, 1.0)
    phase = 1.0 - min(step / rampup, 1.0)
    return lambda_max * math.exp(-5.0 * phase * phase)
