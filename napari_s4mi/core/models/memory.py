"""Activation checkpointing that keeps BatchNorm statistics exact.

A checkpointed module keeps only its inputs in the forward pass and runs its forward again in the backward pass.
The recomputation must not update BatchNorm running statistics a second time: during it every BatchNorm of the
module runs with momentum 0 (its batch statistics, which normalise the output,
are unchanged) and its batch count is restored.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

_ORIGINAL = "_s4mi_forward"


@contextlib.contextmanager
def _frozen_running_stats(norms: list[nn.modules.batchnorm._BatchNorm]) -> Iterator[None]:
    saved = [(bn.momentum, None if bn.num_batches_tracked is None else bn.num_batches_tracked.clone()) for bn in norms]
    for bn in norms:
        if bn.momentum is not None:
            bn.momentum = 0.0
    try:
        yield
    finally:
        for bn, (momentum, tracked) in zip(norms, saved, strict=True):
            bn.momentum = momentum
            if tracked is not None:
                bn.num_batches_tracked.copy_(tracked)


def set_checkpointing(module: nn.Module, enabled: bool) -> None:
    """Turn activation checkpointing of ``module`` on or off (training with gradients only)."""
    original = module.__dict__.pop(_ORIGINAL, None)
    if original is not None:
        del module.forward
    if not enabled:
        return
    forward = module.forward
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]

    def contexts() -> tuple[contextlib.AbstractContextManager, contextlib.AbstractContextManager]:
        return contextlib.nullcontext(), _frozen_running_stats(norms)

    def checkpointed(*args, **kwargs):
        if not (module.training and torch.is_grad_enabled()):
            return forward(*args, **kwargs)
        return checkpoint(forward, *args, use_reentrant=False, context_fn=contexts, **kwargs)

    module.__dict__[_ORIGINAL] = forward
    module.forward = checkpointed


def set_unet_memory_saving(model: nn.Module, enabled: bool = True) -> None:
    """Checkpoint the residual stages of the encoder and every decoder block of an smp U-Net."""
    for name in ("layer1", "layer2", "layer3", "layer4"):
        stage = getattr(model.encoder, name, None)
        if stage is not None:
            set_checkpointing(stage, enabled)
    for block in getattr(model.decoder, "blocks", []):
        set_checkpointing(block, enabled)
