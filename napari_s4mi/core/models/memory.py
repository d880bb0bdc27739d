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


# Peak memory of a training step without memory saving, per input pixel of the batch, by precision: the `paper`
# cross-teaching step (U-Net/ResNet-34 + Swin-UNet 96, 16 images at 224 px; the process's own ~0.8 GB included)
# peaked at 7.6 GB on a CPU in fp32 (~9.5 kB per pixel) and at 4.8 GB under bf16 autocast (~5.9 kB per pixel:
# activations saved for the backward pass in half precision).
STEP_BYTES_PER_PIXEL = {"fp32": 9_500, "bf16": 6_000, "fp16": 6_000}
RAM_SHARE = 0.5  # memory saving turns on when the step would take more than this share of the available memory


def available_memory_bytes() -> int | None:
    """Memory the system can give now (Linux MemAvailable), else its physical memory; None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    try:
        import os

        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def estimated_step_bytes(images_per_step: int, input_size: int, precision: str = "fp32") -> int:
    """A (generous) estimate of a segmentation step's peak memory without memory saving, at ``precision``."""
    per_pixel = STEP_BYTES_PER_PIXEL.get(precision, STEP_BYTES_PER_PIXEL["fp32"])
    return per_pixel * images_per_step * input_size * input_size


def wants_memory_saving(config, device: torch.device, precision: str = "fp32") -> bool:
    """Whether a run activates memory saving: only on CPUs (on a GPU it cost ~30% step time for memory an H200
    did not need); ``on``/``off`` as set, ``auto`` when the step at the run's (resolved) ``precision`` would
    crowd the available RAM. Where it is not needed it stays off: it recomputes the checkpointed forward passes
    (measured on a CPU with native bf16, `paper` in bf16: +36% step time)."""
    if device.type != "cpu" or config.memory_saving == "off":
        return False
    if config.memory_saving == "on":
        return True
    images = config.labeled_batch + config.unlabeled_per_step
    available = available_memory_bytes()
    step = estimated_step_bytes(images, config.input_size, precision)
    return available is not None and step > RAM_SHARE * available
