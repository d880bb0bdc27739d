"""Device and precision choice, autocast, and freeing accelerator memory."""

from __future__ import annotations

import contextlib
import gc

import torch

from . import host
from .errors import TrainingError

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA, then Apple MPS, then the CPU; an unavailable explicit choice is an error."""
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if (name == "cuda" and not cuda) or (name == "mps" and not mps):
        raise TrainingError(f"device '{name}' is not available on this machine: use --device auto or cpu")
    return torch.device(name)


def cpu_has_fast_bf16() -> bool:
    """True when oneDNN has native bf16 kernels (AVX512-BF16 or AMX); elsewhere bf16 is emulated and slow."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(name: str, device: torch.device) -> str:
    """'auto': bf16 where the hardware runs it fast and stably (CUDA with bf16 support; CPUs with native
    bf16 kernels), fp16 on older CUDA GPUs (with loss scaling), fp32 otherwise. On an AVX2-only CPU bf16
    autocast measured 6-10x slower than fp32, so auto keeps fp32 there."""
    if name != "auto":
        if name == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise TrainingError("this GPU has no bf16 support: use --precision fp16 or fp32")
        return name
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "cpu" and cpu_has_fast_bf16():
        return "bf16"
    return "fp32"


def use_channels_last(device: torch.device, precision: str) -> bool:
    """channels_last helps convolutions on CUDA and with CPU bf16; in CPU fp32 it measured slower."""
    return device.type == "cuda" or (device.type == "cpu" and precision != "fp32")


def autocast(device: torch.device, precision: str, cache: bool = True) -> contextlib.AbstractContextManager:
    """The autocast context for a precision; a no-op for fp32. CUDA graph capture needs ``cache=False``."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=DTYPES[precision], cache_enabled=cache)


def return_freed_memory_promptly() -> bool:
    """glibc's mmap threshold lowered to 256 KiB, only where S4MI owns the process (see ``host``); True when it
    applied. In a plain napari with the plugin it is a no-op: the allocator belongs to the host."""
    return host.return_freed_memory_promptly()


def release_memory(device: torch.device) -> None:
    """Return cached accelerator memory to the system after a run.

    Only for accelerators: the collection that frees tensors held in reference cycles holds the GIL (~0.1–0.5 s in
    a napari process, a frozen GUI), and on a CPU there is no cache to return."""
    if device.type not in ("cuda", "mps"):
        return
    gc.collect()
    if device.type == "cuda":
        clear_workspaces = getattr(torch._C, "_cuda_clearCublasWorkspaces", None)
        if clear_workspaces is not None:  # cuBLAS keeps a workspace per stream it met, allocated through torch
            clear_workspaces()
        torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()


def is_out_of_memory(exc: BaseException) -> bool:
    """True for CUDA/MPS/CPU allocation failures."""
    if isinstance(exc, torch.OutOfMemoryError | MemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)
