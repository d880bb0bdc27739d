"""Synthetic batches and the configs the benchmark trains: same sizes for the engine and the plain step."""

from __future__ import annotations

import torch

from ..core.config import SegConfig, preset


def bench_config(name: str, device: str = "cpu", **overrides) -> SegConfig:
    """A preset with random initialisation (no weights exist offline) and fp32, as the plain step runs."""
    config = preset(name, device=device, precision="fp32", **overrides)
    config.cnn = {**config.cnn, "weights": "none"}
    config.swin = {**config.swin, "weights": "none"}
    return config


def synthetic_batch(
    config: SegConfig, seed: int = 0, device: str | torch.device = "cpu"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x_l, y_l, x_u) of the config's batch sizes: normal images and blob-like two-class masks."""
    g = torch.Generator().manual_seed(seed)
    size, n_l, n_u = config.input_size, config.labeled_batch, config.unlabeled_batch
    x_l = torch.randn(n_l, 3, size, size, generator=g)
    x_u = torch.randn(n_u, 3, size, size, generator=g)
    coarse = torch.rand(n_l, 1, max(size // 16, 1), max(size // 16, 1), generator=g)
    y_l = (torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear")[:, 0] > 0.5).long()
    return x_l.to(device), y_l.to(device), x_u.to(device)
