"""`s4mi bench`, a thin entry: the benchmark lives in the repository's ``benchmarks/s4mi_bench`` package, outside
the plugin's import graph (the plugin and the engine never import it)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .core.errors import InputError

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def run_bench(args: argparse.Namespace) -> int:
    """Run ``s4mi_bench.run.run_bench`` from a source checkout."""
    if not (BENCHMARKS / "s4mi_bench").is_dir():
        raise InputError(f"{BENCHMARKS}: no benchmarks here; run `s4mi bench` from a clone of the repository")
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    from s4mi_bench.run import run_bench as bench

    bench(tuple(args.parts), quick=args.quick, out=args.out, device=args.device, precision=args.precision)
    return 0
