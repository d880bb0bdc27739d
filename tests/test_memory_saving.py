"""Memory saving (activation checkpointing) is chosen by the memory the machine has, at the run's precision."""

from __future__ import annotations

import torch

from napari_s4mi.core.models import memory
from napari_s4mi.core.registry import make_config

GB = 10**9


def _paper(**overrides):
    return make_config("segmentation", "cross-teaching", "paper", **overrides)


def test_auto_turns_memory_saving_on_only_where_the_step_would_crowd_the_ram(monkeypatch) -> None:
    cpu = torch.device("cpu")
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: 10 * GB)
    # `paper` (16 images at 224 px): ~7.6 GB in fp32 is over half of 10 GB; ~4.8 GB in bf16 is not
    assert memory.wants_memory_saving(_paper(), cpu, "fp32")
    assert not memory.wants_memory_saving(_paper(), cpu, "bf16")
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: 32 * GB)
    assert not memory.wants_memory_saving(_paper(), cpu, "fp32")  # plenty of RAM: no recomputation
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: 4 * GB)
    assert memory.wants_memory_saving(_paper(), cpu, "bf16")
    assert not memory.wants_memory_saving(_paper(memory_saving="off"), cpu, "bf16")
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: 64 * GB)
    assert memory.wants_memory_saving(_paper(memory_saving="on"), cpu, "bf16")
    assert not memory.wants_memory_saving(_paper(memory_saving="on"), torch.device("cuda"), "bf16")  # CPUs only


def test_the_method_decides_at_its_resolved_precision(monkeypatch) -> None:
    from conftest import tiny_config

    from napari_s4mi.core.methods import build_method

    seen = []
    real = memory.wants_memory_saving

    def spy(config, device, precision="fp32"):
        seen.append(precision)
        return real(config, device, precision)

    monkeypatch.setattr("napari_s4mi.core.methods.segmentation.wants_memory_saving", spy)
    build_method(tiny_config(), {"classes": ["background", "foreground"]}, torch.device("cpu"), "bf16")
    assert seen == ["bf16"]
