"""Segmentation networks (U-Net, Swin-UNet), one factory and offline-safe pretrained-weight resolution."""

from napari_s4mi.core.models.factory import (
    ModelSpec,
    build_model,
    count_parameters,
    spec_from_dict,
    spec_to_dict,
)
from napari_s4mi.core.models.weights import WeightsReport

__all__ = ["ModelSpec", "WeightsReport", "build_model", "count_parameters", "spec_from_dict", "spec_to_dict"]
