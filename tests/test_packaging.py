"""Packaging: the wheel carries the manifest and resources; napari's start-up path stays free of torch."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import REPO


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(REPO)],
        check=True,
        capture_output=True,
    )
    return next(out.glob("napari_s4mi-*.whl"))


def test_wheel_holds_manifest_and_resources(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "napari_s4mi/napari.yaml" in names
    assert "napari_s4mi/resources/sample/PROVENANCE.md" in names
    assert sum(n.startswith("napari_s4mi/resources/sample/images/") for n in names) == 10
    assert sum(n.startswith("napari_s4mi/resources/sample/masks/") for n in names) == 10
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "napari_s4mi:napari.yaml" in text and "s4mi = napari_s4mi.cli:main" in text


def test_manifest_validates():
    result = subprocess.run(
        [str(Path(sys.executable).parent / "npe2"), "validate", "napari-s4mi"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in (result.stdout + result.stderr).lower()


def test_napari_start_up_path_does_not_import_torch():
    code = (
        "import sys, npe2\n"
        "pm = npe2.PluginManager.instance(); pm.discover()\n"
        "assert 'napari-s4mi' in pm._manifests, list(pm._manifests)\n"
        "for name in ('project_widget', 'train_widget', 'predict_widget', 'launch'):\n"
        "    __import__(f'napari_s4mi.widgets.{name}')\n"
        "from napari_s4mi.widgets.launch import get_reader\n"
        "assert get_reader('.') is None\n"
        "bad = [m for m in ('torch', 'timm', 'segmentation_models_pytorch') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_cli_help_does_not_import_torch_or_the_widgets():
    code = (
        "import sys\nfrom napari_s4mi.cli import build_parser\nbuild_parser().format_help()\n"
        "assert 'torch' not in sys.modules\n"
        "assert not [m for m in sys.modules if m.startswith(('napari_s4mi.widgets', 'napari.', 'qtpy'))]\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
