"""Segmentation networks (U-Net, Swin-UNet), one factory and offline-safe pretrained-weight resolution."""

from .factory import (
    ModelSpec,
    build_model,
    count_parameters,
    spec_from_dict,
    spec_to_dict,
)
from .weights import WeightsReport

__all__ = ["ModelSpec", "WeightsReport", "build_model", "count_parameters", "spec_from_dict", "spec_to_dict"]
