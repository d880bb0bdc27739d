"""Data of CASS for segmentation: the slides a segmentation run trains on (outside val and test; masks never
opened), as unlabeled views. The split is the one segmentation runs of the same seed use (assigned here first when
the project has none), so the pretraining never sees a validation or test slide."""

from __future__ import annotations

from typing import Any

from ..data import load_tiles
from ..errors import ProjectError
from ..project import Project
from ..seg_pretrain_config import SegPretrainConfig
from .classification import PretrainingData, tiling_spec
from .picie_data import plan_slides


class SegPretrainingData(PretrainingData):
    """Every training-split tile of a segmentation project, as ``config.view_specs()`` views."""

    def __init__(self, project: Project, config: SegPretrainConfig):  # noqa: D107 - the parent's plan is not used
        self.config = config
        self.messages = []
        self.spec = tiling_spec(config)
        self.pool, _ = plan_slides(project, config.seed)
        pool = set(self.pool)
        self.held_out = sorted(i for i in project.ids if i not in pool)
        self.tiles = load_tiles(project, self.pool, self.spec, with_masks=False)
        if len(self.tiles) == 0:
            raise ProjectError("the training slides gave no tiles: check that they are readable")
        self.red_norm = self._red_norm(self.tiles)
        self.views = config.view_specs()

    def roles(self) -> dict[str, list[str]]:
        return {"pretraining": sorted(self.pool), "held_out": self.held_out}

    def run_info(self) -> dict[str, Any]:
        return super().run_info() | {"slides": len(self.pool)}
