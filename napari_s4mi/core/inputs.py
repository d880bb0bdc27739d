"""Network inputs: uint8 tiles at network size (``preprocess.network_tile``) become normalised tensors.

The one normalisation that training, validation and prediction share: scale to [0, 1], optional red-channel
normalisation R <- R / sqrt(R² + G² + B² + eps), then ImageNet mean/std.
"""

from __future__ import annotations

import numpy as np
import torch

from .preprocess import IMAGENET_MEAN, IMAGENET_STD, RED_NORM_EPS


def normalise_batch(images: np.ndarray, red_norm: bool, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 (N, S, S, 3) -> float32 (N, 3, S, S) on ``device``: [0, 1], optional red normalisation, ImageNet."""
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float().div_(255.0)
    if red_norm:
        norm = torch.sqrt((x * x).sum(dim=1, keepdim=False) + RED_NORM_EPS)
        x[:, 0] = x[:, 0] / norm
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous()


def denormalise(x: torch.Tensor) -> np.ndarray:
    """Undo the ImageNet standardisation of one (3, S, S) input: an (S, S, 3) float32 image, about [0, 1]."""
    return x.detach().cpu().numpy().transpose(1, 2, 0) * IMAGENET_STD + IMAGENET_MEAN
