"""Which class each cluster of an unsupervised run (PiCIE) stands for: fitted once on the pooled validation
confusion by Hungarian matching, or the user's pick of foreground clusters, kept in the run's config.json.

No torch here: the CLI and the Train widget read and set the choice without loading the engine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from .atomic import atomic_write_text
from .errors import InputError
from .runs import CONFIG_FILE, read_run_config

MAP_BUFFER = "cluster_map"


def hungarian_map(confusion: np.ndarray) -> np.ndarray:
    """The class of each cluster from a (clusters × classes) pixel-count confusion pooled over images: the
    one-to-one assignment of most pixels (Hungarian); clusters left over (more clusters than classes) take their
    majority class."""
    confusion = np.asarray(confusion, dtype=np.float64)
    mapping = confusion.argmax(axis=1)
    rows, cols = linear_sum_assignment(confusion, maximize=True)
    mapping[rows] = cols
    return mapping.astype(np.int64)


def foreground_map(clusters: int, foreground: list[int]) -> np.ndarray:
    """Class 1 for the ``foreground`` clusters, 0 for the others."""
    mapping = np.zeros(clusters, dtype=np.int64)
    mapping[list(foreground)] = 1
    return mapping


def mapped_confusion(confusion: np.ndarray, mapping: np.ndarray, classes: int) -> np.ndarray:
    """The (classes × classes) confusion of predicted classes (rows) against the masks' classes (columns)."""
    out = np.zeros((classes, confusion.shape[1]), dtype=np.float64)
    np.add.at(out, np.asarray(mapping), np.asarray(confusion, dtype=np.float64))
    return out


def foreground_iou(confusion: np.ndarray, mapping: np.ndarray) -> float:
    """Pooled foreground (any non-zero class) IoU of the clusters mapped to classes by ``mapping``."""
    confusion = np.asarray(confusion, dtype=np.float64)
    predicted = np.asarray(mapping) > 0
    true_fg = confusion[:, 1:].sum(axis=1)
    tp = true_fg[predicted].sum()
    fp = confusion[predicted, 0].sum()
    fn = true_fg[~predicted].sum()
    denominator = tp + fp + fn
    return float(tp / denominator) if denominator else 1.0


@dataclass(frozen=True)
class ClusterChoice:
    """A run's clusters: how many, the map fitted on validation (None without validation), the user's pick."""

    run_dir: Path
    clusters: int
    fitted: list[int] | None
    foreground: list[int]

    @property
    def in_use(self) -> list[int]:
        """The class of each cluster that prediction uses."""
        if self.foreground:
            return foreground_map(self.clusters, self.foreground).tolist()
        if self.fitted is not None:
            return list(self.fitted)
        return [0] + [1] * (self.clusters - 1)


def _fitted_map(run_dir: Path, network: str) -> list[int] | None:
    """The map fitted on validation, read from the prediction checkpoint's weights (best/, fitted when it was
    saved); None for a run without validation."""
    from safetensors import safe_open

    path = run_dir / "best" / f"{network}.safetensors"
    if not path.is_file():
        return None
    with safe_open(str(path), framework="numpy") as handle:
        return [int(v) for v in handle.get_tensor(MAP_BUFFER)]


def read_cluster_choice(run_dir: Path) -> ClusterChoice | None:
    """The cluster choice of a run, or None when the run has no clusters (another method)."""
    run_dir = Path(run_dir)
    config = read_run_config(run_dir).get("config", {})
    if "clusters" not in config or "foreground_clusters" not in config:
        return None
    network = next(iter(config.get("networks") or {"cnn": None}))
    fitted = _fitted_map(run_dir, network)
    return ClusterChoice(run_dir, int(config["clusters"]), fitted, [int(k) for k in config["foreground_clusters"]])


def set_foreground_clusters(run_dir: Path, foreground: list[int]) -> ClusterChoice:
    """Make ``foreground`` the run's foreground clusters for prediction (empty: back to the validation map)."""
    run_dir = Path(run_dir)
    record = read_run_config(run_dir)
    config = record.get("config", {})
    if "foreground_clusters" not in config:
        raise InputError(f"{run_dir}: a {config.get('method', 'non-clustering')} run has no clusters to choose")
    k = int(config["clusters"])
    foreground = [int(c) for c in foreground]
    if not all(0 <= c < k for c in foreground) or len(set(foreground)) != len(foreground) or len(foreground) >= k:
        raise InputError(
            f"foreground clusters {foreground}: this run has clusters 0..{k - 1}; give distinct ones and leave at "
            "least one for the background"
        )
    config["foreground_clusters"] = foreground
    atomic_write_text(run_dir / CONFIG_FILE, json.dumps(record, indent=2))
    choice = read_cluster_choice(run_dir)
    assert choice is not None
    return choice
