"""The baselines, as a reference script writes them: a plain fp32 eager cross-teaching step and tile loop, and the
same step under autocast with channels_last (the "simple autocast step").

Same networks (built by the repo's factory, so the same classes, initial weights and parameter counts), Adam with
the library's defaults, ½(Dice + CE) on the labeled images, Dice against the other network's argmax on the
unlabeled ones; one forward per network over the labeled + unlabeled batch (as SSL4MIS's cross-teaching script
does). Nothing here is slowed on purpose, and nothing here is tuned beyond what the simple step names.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from napari_s4mi.core.inputs import normalise_batch
from napari_s4mi.core.models import ModelSpec, build_model
from napari_s4mi.core.preprocess import TilingSpec, network_tile, tile_grid

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def build_pair(cnn: dict, swin: dict, num_classes: int, img_size: int) -> tuple[nn.Module, nn.Module]:
    """The CNN and the Swin-UNet of a config, randomly initialised by the repo's model factory."""
    nets = []
    for spec in (cnn, swin):
        fields = {**spec, "weights": "none"}
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
        nets.append(build_model(ModelSpec(**fields), num_classes=num_classes, img_size=img_size)[0])
    return nets[0], nets[1]


def dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1e-5) -> torch.Tensor:
    """1 − mean over classes of the soft Dice of softmax(logits) against the one-hot target."""
    probs = torch.softmax(logits.float(), dim=1)
    one_hot = F.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2).float()
    losses = []
    for k in range(logits.shape[1]):
        intersect = torch.sum(probs[:, k] * one_hot[:, k])
        denominator = torch.sum(probs[:, k] * probs[:, k]) + torch.sum(one_hot[:, k] * one_hot[:, k])
        losses.append(1 - (2 * intersect + smooth) / (denominator + smooth))
    return sum(losses) / len(losses)


class PlainCrossTeaching:
    """Two networks, two Adams, one step: the straightforward eager fp32 loop."""

    name = "plain"

    def __init__(self, cnn: nn.Module, swin: nn.Module, lr: float = 3.6e-4, weight_decay: float = 1e-5):
        self.cnn, self.swin = cnn, swin
        self.opt_cnn = torch.optim.Adam(cnn.parameters(), lr=lr, weight_decay=weight_decay)
        self.opt_swin = torch.optim.Adam(swin.parameters(), lr=lr, weight_decay=weight_decay)

    def set_lr(self, lr: float) -> None:
        for optimizer in (self.opt_cnn, self.opt_swin):
            for group in optimizer.param_groups:
                group["lr"] = lr

    def context(self) -> contextlib.AbstractContextManager:
        """What the forward and the losses run under (nothing for the plain step)."""
        return contextlib.nullcontext()

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def backward_and_step(self, loss: torch.Tensor) -> None:
        self.opt_cnn.zero_grad()
        self.opt_swin.zero_grad()
        loss.backward()
        self.opt_cnn.step()
        self.opt_swin.step()

    def train_step(self, x_l: torch.Tensor, y_l: torch.Tensor, x_u: torch.Tensor, weight: float) -> float:
        """One update of both networks; returns the total loss."""
        self.cnn.train()
        self.swin.train()
        n = len(x_l)
        x = self.inputs(torch.cat([x_l, x_u]))
        with self.context():
            out_cnn = self.cnn(x)
            out_swin = self.swin(x)
            sup_cnn = 0.5 * (F.cross_entropy(out_cnn[:n].float(), y_l) + dice_loss(out_cnn[:n], y_l))
            sup_swin = 0.5 * (F.cross_entropy(out_swin[:n].float(), y_l) + dice_loss(out_swin[:n], y_l))
            pseudo_cnn = torch.argmax(out_cnn[n:].detach(), dim=1)
            pseudo_swin = torch.argmax(out_swin[n:].detach(), dim=1)
            unsup_cnn = dice_loss(out_cnn[n:], pseudo_swin)
            unsup_swin = dice_loss(out_swin[n:], pseudo_cnn)
            loss = sup_cnn + weight * unsup_cnn + sup_swin + weight * unsup_swin
        self.backward_and_step(loss)
        return float(loss.item())

    @torch.no_grad()
    def probabilities(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Softmax of each network and their mean (eval mode)."""
        self.cnn.eval()
        self.swin.eval()
        p_cnn, p_swin = torch.softmax(self.cnn(x), dim=1), torch.softmax(self.swin(x), dim=1)
        return {"cnn": p_cnn, "swin": p_swin, "mean": 0.5 * (p_cnn + p_swin)}


class SimpleAutocastStep(PlainCrossTeaching):
    """The plain step under ``torch.autocast`` at ``precision``, with both networks and the input in channels_last
    (where the precision is not fp32), and loss scaling for fp16: what a short script does to use bf16 hardware."""

    name = "simple"

    def __init__(
        self,
        cnn: nn.Module,
        swin: nn.Module,
        lr: float = 3.6e-4,
        weight_decay: float = 1e-5,
        device_type: str = "cpu",
        precision: str = "bf16",
    ):
        super().__init__(cnn, swin, lr, weight_decay)
        self.device_type, self.precision = device_type, precision
        self.channels_last = precision != "fp32"
        if self.channels_last:
            cnn.to(memory_format=torch.channels_last)
            swin.to(memory_format=torch.channels_last)
        self.scaler = torch.amp.GradScaler(device_type, enabled=precision == "fp16")

    def context(self) -> contextlib.AbstractContextManager:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=DTYPES[self.precision])

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def backward_and_step(self, loss: torch.Tensor) -> None:
        self.opt_cnn.zero_grad()
        self.opt_swin.zero_grad()
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt_cnn)
        self.scaler.step(self.opt_swin)
        self.scaler.update()


@torch.no_grad()
def plain_predict_slide(
    slide: np.ndarray, nets: Sequence[nn.Module], spec: TilingSpec, red_norm: bool, device: str = "cpu"
) -> tuple[np.ndarray, np.ndarray]:
    """Tile by tile: preprocess, run every network, mean softmax, resize back, argmax, paste; plus disagreement.

    Returns uint8 labels (H, W) and float32 disagreement (H, W) (total-variation distance of the two softmaxes).
    """
    for net in nets:
        net.eval()
    height, width = slide.shape[:2]
    labels = np.zeros((height, width), np.uint8)
    disagreement = np.zeros((height, width), np.float32)
    for tile in tile_grid(height, width, spec):
        region = np.zeros((tile.h, tile.w, 3), slide.dtype)
        part = slide[tile.y : tile.y + tile.h, tile.x : tile.x + tile.w]
        region[: part.shape[0], : part.shape[1]] = part
        x = normalise_batch(network_tile(region, spec.input_size)[None], red_norm, device)
        probs = [torch.softmax(net(x), dim=1) for net in nets]
        mean = sum(probs) / len(probs)
        mean = F.interpolate(mean, size=(tile.h, tile.w), mode="bilinear", align_corners=False)
        dis = 0.5 * (probs[0] - probs[-1]).abs().sum(dim=1, keepdim=True)
        dis = F.interpolate(dis, size=(tile.h, tile.w), mode="bilinear", align_corners=False)
        vh, vw = part.shape[:2]
        labels[tile.y : tile.y + vh, tile.x : tile.x + vw] = mean.argmax(dim=1)[0, :vh, :vw].cpu().numpy()
        disagreement[tile.y : tile.y + vh, tile.x : tile.x + vw] = dis[0, 0, :vh, :vw].cpu().numpy()
    return labels, disagreement
