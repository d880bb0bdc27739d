"""The encoders of the two segmentation networks as stand-alone image backbones, for their self-supervised
pretraining (CASS of the segmentation encoders, ``cass-seg``).

- ``{"arch": "unet_encoder", "encoder": "resnet18" | "tu-<timm name>", "weights": ...}``: timm's network of the
  U-Net's encoder without its classifier. Its tensor names are those smp's encoder loads (a ResNet's ``conv1``,
  ``layer1``... as is; a ``tu-`` encoder's under ``model.``), so the saved backbone initialises the U-Net's encoder.
- ``{"arch": "swin_encoder", "embed_dim": 48, "depths": [...], "num_heads": [...], "weights": ...}``: timm's Swin
  Transformer with the Swin-UNet's widths and the window the Swin-UNet takes at this input size, so that its saved
  state converts into the Swin-UNet by the same path as an ImageNet Swin (encoder, decoder blocks mirrored).

Each is wrapped in :class:`PooledEncoder`: the encoder's last feature map, averaged over space (``num_features``
wide), like the classification backbones, so that a network head (a CNN's ``conv_head``) the segmentation network
lacks is not trained. Its tensors sit under ``encoder.``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from ..errors import InputError
from .classifiers import load_initial_weights
from .swin_unet import IMAGENET_SWINS, PATCH_SIZE, resolve_window_size
from .unet import timm_candidates, timm_encoder_name
from .weights import WeightsReport

SEG_ENCODERS = ("unet_encoder", "swin_encoder")


class PooledEncoder(nn.Module):
    """A timm network's ``forward_features`` averaged over space: (N, C, H, W) maps or (N, H, W, C) tokens."""

    def __init__(self, encoder: nn.Module, channels_last_output: bool):
        super().__init__()
        self.encoder = encoder
        self.num_features = int(encoder.num_features)
        self.space = (1, 2) if channels_last_output else (2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder.forward_features(x).mean(dim=self.space)


def build_seg_encoder(spec: Mapping, img_size: int) -> tuple[nn.Module, WeightsReport]:
    """The pooled backbone of an encoder spec and where its weights came from."""
    arch = spec.get("arch")
    if arch == "unet_encoder":
        return _cnn_encoder(str(spec.get("encoder", "resnet34")), spec.get("weights"))
    if arch == "swin_encoder":
        return _swin_encoder(spec, img_size)
    raise InputError(f"unknown segmentation encoder {arch!r}: use one of {', '.join(SEG_ENCODERS)}")


def _cnn_encoder(encoder: str, weights: str | None) -> tuple[nn.Module, WeightsReport]:
    import timm

    name, _ = timm_encoder_name(encoder)
    try:
        model = timm.create_model(name, pretrained=False, num_classes=0)
    except Exception as exc:
        raise InputError(f"U-Net encoder {encoder!r} is not a timm network ({exc})") from exc
    report = load_initial_weights(model, timm_candidates(encoder)[0], weights, f"{encoder} encoder")
    return PooledEncoder(model, channels_last_output=False), report


def _swin_encoder(spec: Mapping, img_size: int) -> tuple[nn.Module, WeightsReport]:
    from timm.models.swin_transformer import SwinTransformer

    depths = tuple(int(d) for d in spec.get("depths", (2, 2, 2, 2)))
    embed_dim = int(spec.get("embed_dim", 96))
    model = SwinTransformer(
        img_size=img_size,
        patch_size=PATCH_SIZE,
        embed_dim=embed_dim,
        depths=depths,
        num_heads=tuple(int(h) for h in spec.get("num_heads", (3, 6, 12, 24))),
        window_size=resolve_window_size(img_size, 7, len(depths)),
        num_classes=0,
    )
    label = f"Swin encoder {embed_dim}"
    report = load_initial_weights(model, IMAGENET_SWINS.get(embed_dim), spec.get("weights"), label)
    return PooledEncoder(model, channels_last_output=True), report
