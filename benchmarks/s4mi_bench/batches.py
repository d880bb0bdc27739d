"""Synthetic batches and the configs the benchmark trains: same sizes for the engine and the baselines."""

from __future__ import annotations

import torch

from napari_s4mi.core.registry import make_config
from napari_s4mi.core.seg_config import CrossTeachingConfig


def bench_config(name: str, device: str = "cpu", precision: str = "auto", **overrides) -> CrossTeachingConfig:
    """The cross-teaching preset ``name`` with random initialisation (no weights exist offline); ``overrides`` by
    field or network name (``cnn=``, ``swin=``)."""
    config = make_config("segmentation", "cross-teaching", name, device=device, precision=precision, **overrides)
    config.set_weights("none")
    return config  # type: ignore[return-value]


def synthetic_batch(
    config: CrossTeachingConfig, seed: int = 0, device: str | torch.device = "cpu"
) -> dict[str, torch.Tensor]:
    """{x_l, y_l, x_u} of the config's batch sizes: normal images and blob-like two-class masks."""
    g = torch.Generator().manual_seed(seed)
    size, n_l, n_u = config.input_size, config.labeled_batch, config.unlabeled_batch
    x_l = torch.randn(n_l, 3, size, size, generator=g)
    x_u = torch.randn(n_u, 3, size, size, generator=g)
    coarse = torch.rand(n_l, 1, max(size // 16, 1), max(size // 16, 1), generator=g)
    y_l = (torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear")[:, 0] > 0.5).long()
    return {"x_l": x_l.to(device), "y_l": y_l.to(device), "x_u": x_u.to(device)}
