"""Whose process this is: the plugin is a guest in a napari process that it does not own, next to other plugins.

Process-wide settings (the garbage collector, the interpreter's switch interval, glibc's allocator) are changed
only where S4MI owns the process: `s4mi napari` and the `s4mi` command line call :func:`claim_process` first.
In a plain ``napari`` with the plugin, :func:`owns_process` is False and each helper here is a no-op.

triton and Mesa's LLVM: a CUDA build of torch imports triton the first time ``torch._dynamo`` loads (an optimizer
step does). triton's ``libtriton.so`` carries its own LLVM and exports its symbols; where Mesa's software OpenGL
(llvmpipe: Xvfb, remote and virtual desktops) has loaded ``libLLVM`` into the global symbol scope, triton's LLVM
calls bind to Mesa's copy and the process crashes (SIGSEGV while importing triton). :func:`load_triton_apart`
loads ``libtriton.so`` first with ``RTLD_DEEPBIND``, so that it binds to its own LLVM; Python's later ``import
triton`` reuses that loaded library. Nothing is blocked and no process-wide flag changes, so it is safe for a guest
(and it protects other plugins that import triton too). No environment variable of torch turns the import off.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib.util
import os
import platform
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

_owner: str | None = None


def claim_process(owner: str = "s4mi") -> None:
    """Declare that S4MI owns this process (`s4mi napari`, the CLI): process-wide tweaks may apply."""
    global _owner
    _owner = owner


def release_process() -> None:
    """Back to guest mode (tests)."""
    global _owner
    _owner = None


def owns_process() -> bool:
    """True only where :func:`claim_process` was called (never in a plain ``napari`` with the plugin)."""
    return _owner is not None


# ------------------------------------------------------------------------------------------------- gc.freeze

_startup_frozen = False


def freeze_startup_objects() -> bool:
    """Once per owned process, after a first training step (or predicted slide): collect, then move every object
    alive now (napari's, torch's, nearly all alive for the whole session) out of the garbage collector's sight; True
    when it froze now. A no-op in a guest process.

    A full collection scans every tracked object while holding the GIL: with napari and torch loaded that froze the
    GUI for ~0.5 s whenever a worker allocated heavily (building the networks of a Predictor). Afterwards
    collections scan only newer objects. The price: objects alive now that later become cyclic garbage are not
    reclaimed (at most the layers on show at the first Start). ``S4MI_GC_FREEZE=0`` turns this off.
    """
    global _startup_frozen
    if not owns_process() or _startup_frozen or os.environ.get("S4MI_GC_FREEZE", "1") == "0":
        return False
    _startup_frozen = True
    gc.collect()
    gc.freeze()
    return True


# ----------------------------------------------------------------------------------------- switch interval

GIL_SWITCH_S = 0.0005
_switch_lock = threading.Lock()
_switch_users = 0
_switch_before = 0.005


@contextlib.contextmanager
def short_gil_switch() -> Iterator[bool]:
    """In an owned process, while any job runs, Python hands the GIL over every 0.5 ms instead of every 5 ms; the
    previous interval comes back when the last job ends. Yields whether it applied (never in a guest process).

    Each time the GUI thread returns from a call that released the GIL (every OpenGL call while napari paints) it
    waits for a worker running Python code; a paint makes dozens of such calls. Measured while training (GUI bench,
    noisy): longest event-loop gap median 60 ms over 4 runs with 5 ms, 46 ms over 8 runs with 0.5 ms; no measurable
    change in training time.
    """
    global _switch_users, _switch_before
    if not owns_process():
        yield False
        return
    with _switch_lock:
        if _switch_users == 0:
            _switch_before = sys.getswitchinterval()
            sys.setswitchinterval(GIL_SWITCH_S)
        _switch_users += 1
    try:
        yield True
    finally:
        with _switch_lock:
            _switch_users -= 1
            if _switch_users == 0:
                sys.setswitchinterval(_switch_before)


# ------------------------------------------------------------------------------------------------- mallopt


def return_freed_memory_promptly() -> bool:
    """In an owned process on glibc, serve allocations of 256 KiB and more by mmap, so that freed activations go
    back to the system at once instead of fragmenting the heap (measured: peak RSS of a `paper` CPU step 5.0 ->
    3.95 GB). Returns whether the setting applied; a no-op in a guest process and off glibc."""
    if not owns_process() or platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(-3, 256 * 1024))  # M_MMAP_THRESHOLD; also stops glibc's dynamic threshold
    except (OSError, AttributeError):
        return False


# -------------------------------------------------------------------------------------------------- triton

_triton_lock = threading.Lock()


def _loaded_libraries() -> str:
    try:
        return Path("/proc/self/maps").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def load_triton_apart() -> bool:
    """Where Mesa's ``libLLVM`` is loaded and triton is not yet, load ``libtriton.so`` bound to its own symbols
    (``RTLD_DEEPBIND``) so that torch's later ``import triton`` does not crash the process. True when it loaded it;
    safe to call from any thread, any number of times."""
    deepbind = getattr(os, "RTLD_DEEPBIND", None)
    if deepbind is None or "triton" in sys.modules:
        return False
    with _triton_lock:
        maps = _loaded_libraries()
        if "libLLVM" not in maps or "libtriton" in maps:
            return False
        try:
            spec = importlib.util.find_spec("triton")
        except (ImportError, ValueError):
            return False
        if spec is None or spec.origin is None:
            return False
        library = Path(spec.origin).parent / "_C" / "libtriton.so"
        if not library.is_file():
            return False
        try:
            ctypes.CDLL(str(library), mode=os.RTLD_NOW | os.RTLD_LOCAL | deepbind)
        except OSError:
            return False
        return True
