"""Process-wide tweaks apply only where S4MI owns the process (`s4mi napari`, the CLI), never in a guest process."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from napari_s4mi.core import host


@pytest.fixture
def owned():
    """This test process claimed for the test's length, then a guest again."""
    assert not host.owns_process(), "the test process is a guest unless a test claims it"
    host.claim_process("test")
    yield
    host.release_process()


def test_short_gil_switch_only_in_an_owned_process_and_restored(owned):
    before = sys.getswitchinterval()
    with host.short_gil_switch() as applied:
        assert applied and sys.getswitchinterval() == pytest.approx(host.GIL_SWITCH_S)
        with host.short_gil_switch():  # a second job
            pass
        assert sys.getswitchinterval() == pytest.approx(host.GIL_SWITCH_S)  # the first still runs
    assert sys.getswitchinterval() == before
    host.release_process()
    with host.short_gil_switch() as applied:
        assert not applied and sys.getswitchinterval() == before


def test_guest_process_gets_no_tweaks_and_an_owned_one_does():
    """Fresh interpreters: gc.freeze and mallopt cannot be undone exactly."""
    code = (
        "import gc; from napari_s4mi.core import host; "
        "guest = (host.freeze_startup_objects(), gc.get_freeze_count(), host.return_freed_memory_promptly()); "
        "host.claim_process(); "
        "owned = (host.freeze_startup_objects(), gc.get_freeze_count() > 1000, host.freeze_startup_objects(), "
        "host.return_freed_memory_promptly()); "
        "print(*guest, *owned)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert run.stdout.split() == ["False", "0", "False", "True", "True", "False", str(glibc)]
    env = {**os.environ, "S4MI_GC_FREEZE": "0"}
    off = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert off.stdout.split()[3:6] == ["False", "False", "False"]


def test_device_memory_setting_is_gated_by_the_owner():
    code = (
        "from napari_s4mi.core import host; from napari_s4mi.core.device import return_freed_memory_promptly as f; "
        "print(f()); host.claim_process(); print(f())"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert run.stdout.split() == ["False", str(glibc)]


def test_triton_is_not_blocked_and_loads_apart_only_beside_mesa_llvm():
    assert sys.modules.get("triton", "absent") is not None  # nothing planted to make `import triton` fail
    if "libLLVM" not in host._loaded_libraries():
        assert not host.load_triton_apart()  # no Mesa LLVM here (no OpenGL context): nothing to do
