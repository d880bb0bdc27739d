"""Intensity scaling to RGB uint8: one percentile scaling per slide, then gray/2-channel/alpha handling."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PERCENTILES = (1.0, 99.8)


@dataclass(frozen=True)
class Scaling:
    """Linear map of source values to uint8: ``lo`` → 0, ``hi`` → 255, per channel (arrays of length C)."""

    lo: np.ndarray
    hi: np.ndarray

    def apply(self, data: np.ndarray) -> np.ndarray:
        """Scale (h, w, C) data to uint8, clipping outside [lo, hi]; NaN becomes 0."""
        span = np.where(self.hi > self.lo, self.hi - self.lo, 1.0)
        out = (data.astype(np.float32) - self.lo.astype(np.float32)) * (255.0 / span).astype(np.float32)
        out = np.nan_to_num(out, nan=0.0, posinf=255.0, neginf=0.0)
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def needs_scaling(dtype: np.dtype) -> bool:
    """True for data that is not already 8-bit (uint8 and bool are mapped without percentiles)."""
    return np.dtype(dtype) not in (np.dtype(np.uint8), np.dtype(bool))


def compute_scaling(sample: np.ndarray, joint: bool) -> Scaling:
    """1st/99.8th percentiles of a (h, w, C) sample, per channel or over all channels (``joint``)."""
    values = sample.reshape(-1, sample.shape[-1])
    if joint:
        lo, hi = _percentiles(values.ravel())
        count = values.shape[1]
        return Scaling(np.full(count, lo), np.full(count, hi))
    pairs = [_percentiles(values[:, k]) for k in range(values.shape[1])]
    return Scaling(np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs]))


def _percentiles(values: np.ndarray) -> tuple[float, float]:
    if values.dtype.kind == "f":
        values = values[np.isfinite(values)]
    if values.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(values, PERCENTILES)
    return float(lo), float(hi)


def to_rgb8(data: np.ndarray, scaling: Scaling | None) -> np.ndarray:
    """(h, w, C) source data → (h, w, 3) uint8: scale, then replicate gray / pad 2 channels / drop alpha."""
    data = data[..., :3]
    if data.dtype == bool:
        data = data.astype(np.uint8) * 255
    elif scaling is not None:
        data = scaling.apply(data)
    channels = data.shape[-1]
    if channels == 1:
        return np.repeat(data, 3, axis=-1)
    if channels == 2:
        return np.concatenate([data, np.zeros_like(data[..., :1])], axis=-1)
    return np.ascontiguousarray(data)
