"""Training methods, one module each; the registry (``core/registry.py``) names them. See ``base.Method``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from ..config import TrainConfig
    from .base import Method


def build_method(
    config: TrainConfig,
    run_info: Mapping[str, Any],
    device: torch.device,
    precision: str,
    weights: str | None = None,
) -> Method:
    """The registered method of ``config``, its networks built (``weights`` overrides their weights spec)."""
    from ..registry import entry_for

    return entry_for(config).method_class()(config, run_info, device, precision, weights)
