"""Peak resident memory of training steps, each implementation in a fresh process (its own VmHWM): the engine as
``auto`` decides on this machine and with memory saving forced on, the plain fp32 step and the simple autocast step.
The processes are those of ``s4mi_bench.step`` (two steps, no warm-up)."""

from __future__ import annotations

from .proc import peak_rss_mb, run_json
from .step import args_for

_rss_mb = peak_rss_mb  # the name earlier tests used

VARIANTS = (
    ("engine", {}),
    ("engine", {"memory_saving": "on"}),
    ("plain", {}),
    ("simple", {}),
)


def measure_in_subprocess(
    impl: str,
    preset_name: str,
    steps: int = 2,
    overrides: dict | None = None,
    device: str = "cpu",
    precision: str = "auto",
    timeout: float = 1800,
) -> dict:
    """``steps`` training steps of ``impl`` in a fresh interpreter: its peak (VmHWM) and the memory of its models."""
    args = args_for(impl, preset_name, steps, 0, device, precision, overrides)
    result = run_json("step", args, timeout=timeout)
    return {"impl": impl, "preset": preset_name} | result


def peak_memory(preset_name: str, device: str = "cpu", precision: str = "auto") -> dict:
    """The peak of every variant (the simple step only where the engine's precision is not fp32)."""
    import torch

    from napari_s4mi.core.device import resolve_precision

    engine_precision = resolve_precision(precision, torch.device(device))
    rows = []
    for impl, overrides in VARIANTS:
        if impl == "simple" and engine_precision == "fp32":
            continue
        row = measure_in_subprocess(impl, preset_name, 2, overrides, device, precision)
        row["label"] = impl + (" (memory saving on)" if overrides.get("memory_saving") == "on" else "")
        rows.append(row)
    return {"preset": preset_name, "rows": rows}
