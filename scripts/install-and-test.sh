#!/usr/bin/env bash
# Install the test dependencies (Debian's virtual X server for the GUI tests, the package with its Qt and test
# extras in a fresh .venv) and run ruff and the test suite. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
X_PACKAGES="xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0 libxcb-cursor0 libxcb-randr0 \
libxcb-render-util0 libxcb-shape0 libxkbcommon-x11-0 libgl1 libegl1"
if ! command -v Xvfb >/dev/null; then
    SUDO=$([ "$(id -u)" -eq 0 ] && echo "" || echo "sudo")
    $SUDO apt-get update -q && $SUDO apt-get install -y -q $X_PACKAGES
fi
python3 -m venv .venv
.venv/bin/pip install -q -e ".[qt,test]"
.venv/bin/ruff check .
HF_HUB_OFFLINE=1 .venv/bin/python -m pytest "$@"
