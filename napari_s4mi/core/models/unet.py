"""CNN U-Net of the cross-teaching pair: segmentation-models-pytorch's U-Net with a ResNet encoder.

ImageNet weights come from timm's checkpoint of the same ResNet in the Hugging Face cache (timm's
ResNet keys ``conv1``/``bn1``/``layer1..4`` are the keys of smp's ResNet encoder; timm's ``fc`` is
dropped). The torchvision-trained tag (``<encoder>.tv_in1k``, the weights smp itself would download) is
preferred, then timm's default tag; when neither is cached the first is downloaded once (see ``fetch``).
``tu-<name>`` encoders (smp's timm-universal encoders) look up ``<name>``.

A ``.safetensors`` file is loaded into the whole model when its keys are those of this U-Net (a
checkpoint saved from it; a segmentation head of another class count is skipped), else into the encoder
(a bare ResNet state dict such as a timm or torchvision ResNet, or one saved from ``model.encoder``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from ..errors import InputError
from .fetch import imagenet_checkpoint
from .weights import (
    WeightsReport,
    adapt_first_conv,
    imagenet_source,
    is_imagenet_spec,
    is_random_spec,
    load_matching,
    load_state_file,
    missing_imagenet_report,
    random_report,
)


def timm_encoder_name(encoder: str) -> tuple[str, str]:
    """The timm model name of an smp encoder and the key prefix of its weights inside ``model.encoder``."""
    if encoder.startswith("tu-"):
        return encoder[3:], "model."
    return encoder, ""


def timm_candidates(encoder: str) -> list[str]:
    """timm names to look up, best first: torchvision weights (as smp's own), then timm's default tag."""
    name, _ = timm_encoder_name(encoder)
    if "." in name:
        return [name]
    return [f"{name}.tv_in1k", name]


def count_matching(module: nn.Module, state: Mapping[str, torch.Tensor], prefix: str = "") -> int:
    """How many tensors of ``module`` a state dict would fill (same name after ``prefix`` and same shape)."""
    own = module.state_dict()
    return sum(
        1
        for key, value in state.items()
        if (prefix + key) in own and tuple(own[prefix + key].shape) == tuple(value.shape)
    )


def _load_imagenet(model: nn.Module, encoder: str, in_channels: int) -> WeightsReport:
    """ImageNet encoder weights from the cache (downloaded once when missing), else a 'random' report."""
    _, prefix = timm_encoder_name(encoder)
    found = imagenet_checkpoint(timm_candidates(encoder))
    if found.path is None:
        return missing_imagenet_report(found.name, found.reason)
    state = adapt_first_conv(load_state_file(found.path), "conv1.weight", in_channels)
    loaded, total = load_matching(model.encoder, state, {"": prefix} if prefix else None)
    if not loaded:
        return random_report(f"ImageNet weights of {found.name} do not fit a {encoder} encoder: random initialisation")
    source, where = imagenet_source(found.status)
    msg = f"ImageNet weights of {found.name} {where}: {loaded}/{total} encoder tensors"
    return WeightsReport(source, msg, loaded, total)


def _load_file(model: nn.Module, encoder: str, path: Path, in_channels: int) -> WeightsReport:
    """Weights from a safetensors file: the whole U-Net if its keys match, else the encoder."""
    state = load_state_file(path)
    _, prefix = timm_encoder_name(encoder)
    if count_matching(model, state) >= count_matching(model.encoder, state, prefix):
        target, where, prefix_map = model, "model", None
        state = adapt_first_conv(state, f"encoder.{prefix}conv1.weight", in_channels)
    else:
        target, where, prefix_map = model.encoder, "encoder", ({"": prefix} if prefix else None)
        state = adapt_first_conv(state, "conv1.weight", in_channels)
    loaded, total = load_matching(target, state, prefix_map)
    if loaded == 0:
        raise InputError(f"{path.name}: no tensor matches a U-Net with a {encoder} encoder; check the file")
    return WeightsReport("file", f"{path.name}: {loaded}/{total} {where} tensors loaded", loaded, total)


def build_unet(
    encoder: str = "resnet34", num_classes: int = 2, weights: str = "imagenet", in_channels: int = 3
) -> tuple[nn.Module, WeightsReport]:
    """A U-Net giving logits (N, num_classes, H, W) for (N, in_channels, H, W), H and W multiples of 32."""
    import segmentation_models_pytorch as smp

    try:
        model = smp.Unet(encoder_name=encoder, encoder_weights=None, in_channels=in_channels, classes=num_classes)
    except Exception as exc:
        raise InputError(f"U-Net encoder {encoder!r} is not available ({exc}); try resnet18 or resnet34") from exc
    if is_random_spec(weights):
        return model, random_report()
    if is_imagenet_spec(weights):
        return model, _load_imagenet(model, encoder, in_channels)
    return model, _load_file(model, encoder, Path(weights).expanduser(), in_channels)
