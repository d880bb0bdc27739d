"""CASS for segmentation (``cass-seg``): the CASS objective on the U-Net's and the Swin-UNet's encoders, whose
backbones then initialise a segmentation run (``--init ssl RUN``, see ``ssl_init``)."""

from __future__ import annotations

from torch import nn

from ..models.seg_encoders import build_seg_encoder
from .cass import Cass


class CassSeg(Cass):
    """:class:`Cass` with the segmentation encoders (``config.networks``: a ``unet_encoder`` and a ``swin_encoder``)
    as its CNN and its transformer."""

    def backbone(self, name: str, weights: str | None, report: bool = True) -> nn.Module:
        spec = dict(self.config.networks[name])
        if weights is not None:
            spec["weights"] = weights
        module, weights_report = build_seg_encoder(spec, self.config.input_size)
        if report:
            self.reports.append(weights_report)
        return module
