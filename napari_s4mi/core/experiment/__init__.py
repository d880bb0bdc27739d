"""The annotation-efficiency protocol as one job: methods x label fractions x seeds, scored on a held-out test split.

Modules: ``spec`` (the grid, presets, run names, parts), ``splits`` (seeded, group-aware slide splits), ``prepare``
(the experiment's own projects and data hash), ``runner`` (train, resume, test, mark done), ``evaluate`` (test
metrics, parameter counts), ``stats`` (mean and Student-t CI), ``report`` (results.json, tables, plot). No Qt; torch
only inside training and evaluation.
"""

from .prepare import DataSource
from .spec import PRESETS, ExperimentSpec, RunSpec, SplitSpec

__all__ = ["PRESETS", "DataSource", "ExperimentSpec", "RunSpec", "SplitSpec"]
