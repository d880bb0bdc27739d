"""The hardware's matrix-product peak, measured: FLOP/s of a large square matmul in fp32 and bf16 (and fp16 on
CUDA), best of a few, in a fresh process. Prints one JSON line: ``{"fp32": GFLOP/s, "bf16": GFLOP/s, ...}``.

    python -m s4mi_bench.peak --device cpu --size 4096
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def matmul_gflops(dtype_name: str, size: int = 4096, reps: int = 3, device: str = "cpu") -> float:
    """Best GFLOP/s of ``size``³ matrix products (2·n³ FLOPs each) after one untimed product."""
    import torch

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype_name]
    g = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=g).to(device=device, dtype=dtype)
    b = torch.randn(size, size, generator=g).to(device=device, dtype=dtype)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    torch.mm(a, b)
    sync()
    best = float("inf")
    for _ in range(reps):
        tick = time.perf_counter()
        torch.mm(a, b)
        sync()
        best = min(best, time.perf_counter() - tick)
    return 2 * size**3 / best / 1e9


def measure(device: str = "cpu", size: int = 4096, reps: int = 3) -> dict:
    import torch

    from .proc import OtherLoad

    threads = os.environ.get("S4MI_BENCH_THREADS")
    if threads:
        torch.set_num_threads(int(threads))
    dtypes = ["fp32", "bf16"] + (["fp16"] if device == "cuda" else [])
    result: dict = {"device": device, "size": size, "threads": torch.get_num_threads()}
    load = OtherLoad().start()
    for name in dtypes:
        result[name] = round(matmul_gflops(name, size, reps, device), 1)
    result["other_cores"] = round(load.cores(), 2)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.device, args.size, args.reps)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
