"""Fresh processes: each timed implementation runs as ``python -m s4mi_bench.<module>`` and prints one JSON line.

Timing two implementations in one process misled before: the engine's process-wide allocator setting and the
freed-memory layout one leaves behind slowed the other (a plain fp32 `paper` step read 26.7 s next to the engine,
11.4-14.7 s alone). So every timed run is a new interpreter, and the implementations alternate (A B C A B C).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1]


def child_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this environment) with ``benchmarks/`` on PYTHONPATH (so that ``-m s4mi_bench.x``
    imports) and offline hubs."""
    env = dict(os.environ if base is None else base)
    paths = [str(BENCHMARKS), *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env.setdefault("HF_HUB_OFFLINE", "1")
    return env


def run_json(module: str, args: list[str], timeout: float = 3600, env: dict[str, str] | None = None) -> dict:
    """Run ``python -m s4mi_bench.<module> *args`` in a fresh interpreter; its last JSON line, or {'error': ...}."""
    command = [sys.executable, "-m", f"s4mi_bench.{module}", *args]
    try:
        done = subprocess.run(
            command, env=env or child_env(), capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": f"{module} timed out after {timeout:.0f} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        return {"error": f"{module} exit {done.returncode}: {tail[:300]}"}
    return json.loads(lines[-1])


def peak_rss_mb() -> float:
    """This process's peak resident set size in MiB.

    On Linux the high-water mark of this program's own memory (VmHWM): ``ru_maxrss`` also keeps the RSS of the
    process that forked us (a benchmark that has trained in-process would report its own size, measured: 6.8 GB
    for a 2.9 GB step). Elsewhere ``ru_maxrss`` (KiB on Linux, bytes on macOS)."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def current_rss_mb() -> float:
    """Resident memory now in MiB (NaN where /proc is missing)."""
    try:
        with open("/proc/self/statm") as handle:
            pages = int(handle.read().split()[1])
    except OSError:
        return float("nan")
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


# ------------------------------------------------------------------------------------ other processes' load


def _cpu_jiffies() -> tuple[int, int] | None:
    """(busy jiffies of the whole machine, jiffies of this process) now; None where /proc is missing."""
    try:
        with open("/proc/stat") as handle:
            fields = [int(v) for v in handle.readline().split()[1:]]
        with open("/proc/self/stat") as handle:
            own = handle.read().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    busy = sum(fields[:8]) - idle  # user nice system idle iowait irq softirq steal (guest is in user)
    return busy, int(own[11]) + int(own[12])  # utime + stime of all this process's threads


class OtherLoad:
    """How many cores other processes kept busy between :meth:`start` and :meth:`cores` (NaN off Linux).

    On a shared machine the timings are only as good as the machine is quiet: with two cores and PyTorch's
    OpenMP threads waiting on each other, another busy process made a 0.5 s step take up to 20 s."""

    def __init__(self) -> None:
        self._hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._start: tuple[tuple[int, int] | None, float] = (None, 0.0)

    def start(self) -> OtherLoad:
        import time

        self._start = (_cpu_jiffies(), time.perf_counter())
        return self

    def cores(self) -> float:
        import time

        before, tick = self._start
        after = _cpu_jiffies()
        elapsed = time.perf_counter() - tick
        if before is None or after is None or elapsed <= 0:
            return float("nan")
        others = (after[0] - before[0]) - (after[1] - before[1])
        return max(others, 0) / self._hz / elapsed


def wait_for_quiet(threshold_cores: float = 0.3, window_s: float = 2.0, max_wait_s: float = 120.0) -> float:
    """Wait (up to ``max_wait_s``) until other processes use less than ``threshold_cores`` over a ``window_s``
    window; returns the seconds waited (the last window's load is what the caller then sees)."""
    import time

    started = time.perf_counter()
    while True:
        load = OtherLoad().start()
        time.sleep(window_s)
        cores = load.cores()
        if not cores >= threshold_cores or time.perf_counter() - started >= max_wait_s:  # NaN: cannot tell, go on
            return time.perf_counter() - started
