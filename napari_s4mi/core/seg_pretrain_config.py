"""Config of CASS for segmentation (``cass-seg``): the CNN U-Net's encoder and the Swin-UNet's encoder trained to
agree on the project's own slides, without masks, before a segmentation run starts from them (``--init ssl RUN``).

A weak randomly initialised Swin partner feeds cross-teaching poor pseudo-labels; pretraining both encoders
together on the slides is the remedy that needs no download. The networks, input size, tiling and red
normalisation are those of the segmentation config it prepares (:func:`pretraining_for`). No torch here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .cls_config import CassConfig
from .config import Check
from .errors import InputError
from .seg_config import CrossTeachingConfig, SegConfig

SEG_PRETRAIN_METHOD = "cass-seg"
SHARED_WITH_SEG = ("seed", "device", "precision", "input_size", "red_norm", "tile_size", "tile_threshold")


def encoder_specs(networks: Mapping[str, Mapping], weights: str | None = None) -> dict[str, dict]:
    """The pretraining specs of a segmentation config's networks (``unet`` / ``swin_unet``), by the same names."""
    specs: dict[str, dict] = {}
    for name, net in networks.items():
        init = weights if weights is not None else net.get("weights", "imagenet")
        if net.get("arch") == "unet":
            specs[name] = {"arch": "unet_encoder", "encoder": net.get("encoder", "resnet34"), "weights": init}
        elif net.get("arch") == "swin_unet":
            specs[name] = {
                "arch": "swin_encoder",
                "embed_dim": int(net.get("embed_dim", 96)),
                "depths": list(net.get("depths", (2, 2, 2, 2))),
                "num_heads": list(net.get("num_heads", (3, 6, 12, 24))),
                "weights": init,
            }
        else:
            raise InputError(f"network {name!r} ({net.get('arch')}) has no encoder to pretrain")
    return specs


def can_pretrain(networks: Mapping[str, Mapping]) -> bool:
    """Whether every network of a segmentation config has an encoder the pretraining prepares (U-Net, Swin-UNet;
    not PiCIE's FPN)."""
    return bool(networks) and all(net.get("arch") in ("unet", "swin_unet") for net in networks.values())


def same_encoder(pretrained: Mapping, wanted: Mapping) -> bool:
    """Whether two encoder specs describe the same architecture (their initial weights aside)."""
    keys = ("arch", "encoder", "embed_dim", "depths", "num_heads")
    return all(_plain(pretrained.get(k)) == _plain(wanted.get(k)) for k in keys)


def _plain(value: object) -> object:
    return list(value) if isinstance(value, tuple | list) else value


def _default_encoders() -> dict[str, dict[str, Any]]:
    return encoder_specs(CrossTeachingConfig().networks)


@dataclass
class SegPretrainConfig(CassConfig):
    """CASS (projection to a shared width, loss 2 - 2 cos) on the two segmentation encoders."""

    prepares: ClassVar[str] = "segmentation"

    method: str = SEG_PRETRAIN_METHOD
    iterations: int = 500
    checkpoint_every: int = 100
    networks: dict[str, dict[str, Any]] = field(default_factory=_default_encoders)

    def checks(self) -> list[Check]:
        archs = {spec.get("arch") for spec in self.networks.values()}
        return super().checks() + [
            (archs <= {"unet_encoder", "swin_encoder"}, "cass-seg pretrains the U-Net and Swin-UNet encoders only"),
            (len(self.networks) == 2, "cass-seg pretrains two encoders, a CNN and a Swin"),
        ]

    @classmethod
    def paper_settings(cls) -> dict[str, Any]:
        paper = CrossTeachingConfig.paper_settings()
        return {
            "input_size": paper["input_size"],
            "batch": 16,
            "epochs": 100,
            "networks": encoder_specs(paper["networks"]),
        }


def pretraining_for(seg: SegConfig, **overrides: Any) -> SegPretrainConfig:
    """The ``cass-seg`` config that prepares ``seg``: cross-teaching's two encoders (a supervised U-Net run is
    prepared by the same pretraining, using its CNN), with ``seg``'s shared settings, then ``overrides``."""
    pair = CrossTeachingConfig.for_preset(seg.preset).networks
    pair.update({name: spec for name, spec in seg.networks.items() if name in pair})
    config = SegPretrainConfig.for_preset(seg.preset)
    config.networks = encoder_specs(pair)
    for key in SHARED_WITH_SEG:
        setattr(config, key, getattr(seg, key))
    config.override(**overrides)
    return config.validate()  # type: ignore[return-value]
