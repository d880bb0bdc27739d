"""CASS for segmentation (``cass-seg``): the CASS objective on the U-Net's and the Swin-UNet's encoders, whose
backbones then initialise a segmentation run (``--init ssl RUN``, see ``ssl_init``)."""

from __future__ import annotations

from torch import nn

from ..models.seg_encoders import build_seg_encoder
from ..models.weights import WeightsReport
from .cass import Cass


class CassSeg(Cass):
    """:class:`Cass` with the segmentation encoders (``config.networks``: a ``unet_encoder`` and a ``swin_encoder``)
    as its CNN and its transformer."""

    def build_backbone(self, spec: dict) -> tuple[nn.Module, WeightsReport]:
        return build_seg_encoder(spec, self.config.input_size)
