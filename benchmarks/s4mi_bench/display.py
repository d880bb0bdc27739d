"""A virtual X server for the parts that open napari windows, started only when no display is set."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator


@contextlib.contextmanager
def x_display() -> Iterator[dict[str, str]]:
    """The environment for a GUI subprocess: the current DISPLAY, or a fresh Xvfb's (stopped on exit).

    Raises RuntimeError when there is no display and Xvfb is missing or does not start."""
    env = dict(os.environ)
    if env.get("DISPLAY"):
        yield env
        return
    xvfb = shutil.which("Xvfb") or ("/usr/bin/Xvfb" if os.path.exists("/usr/bin/Xvfb") else None)
    if xvfb is None:
        raise RuntimeError("no DISPLAY and no Xvfb (install xvfb)")
    read_fd, write_fd = os.pipe()
    command = [xvfb, "-displayfd", str(write_fd), "-screen", "0", "1280x1024x24", "-nolisten", "tcp"]
    server = subprocess.Popen(command, pass_fds=(write_fd,), stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    os.close(write_fd)
    try:
        with os.fdopen(read_fd) as pipe:
            number = pipe.readline().strip()
        if not number:
            raise RuntimeError("Xvfb did not start")
        env["DISPLAY"] = f":{number}"
        env.pop("QT_QPA_PLATFORM", None)
        yield env
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
