"""napari-s4mi: semi-supervised segmentation and classification from a few annotations.

This module stays light: napari imports it at start-up, so nothing here imports torch.
"""

from pathlib import Path

__version__ = "0.1.0"


def resources_dir() -> Path:
    """Folder of the packaged resources (configs, sample project)."""
    return Path(__file__).resolve().parent / "resources"
