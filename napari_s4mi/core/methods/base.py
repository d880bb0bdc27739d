"""What the segmentation methods share: networks, one Adam per network, the update step, probabilities."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..config import SegConfig
from ..device import autocast, return_freed_memory_promptly, use_channels_last
from ..models import ModelSpec, WeightsReport, build_model
from ..models.memory import set_unet_memory_saving
from .captured import CapturedStep


def build_network(spec: dict, num_classes: int, img_size: int, weights: str | None = None):
    """A network from a config dict (ModelSpec fields); weights overrides the spec's weights."""
    fields = dict(spec)
    if weights is not None:
        fields["weights"] = weights
    for key in ("depths", "num_heads"):
        if key in fields:
            fields[key] = tuple(fields[key])
    return build_model(ModelSpec(**fields), num_classes=num_classes, img_size=img_size)


class SegMethod:
    """Base of the segmentation methods: subclasses name their networks (config fields) and implement `losses`."""

    name = "base"
    network_names: tuple[str, ...] = ()

    def __init__(
        self, config: SegConfig, num_classes: int, device: torch.device, precision: str, weights: str | None = None
    ):
        self.config = config
        self.num_classes = num_classes
        self.device = device
        self.precision = precision
        self.networks: dict[str, nn.Module] = {}
        # CUDA in bf16/fp32: forward + backward replayed from a captured graph (fp16's loss scaling stays eager)
        graphs = config.cuda_graphs and device.type == "cuda" and precision != "fp16"
        self._capture: CapturedStep | None = CapturedStep(device) if graphs else None
        self.reports: list[WeightsReport] = []
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
        self.channels_last = use_channels_last(device, precision)
        # memory saving trades ~30% step time for memory: wanted on CPUs (the paper preset in < 4 GB), not on GPUs
        self.memory_saving = config.memory_saving and device.type == "cpu"
        if self.memory_saving:
            return_freed_memory_promptly()
        for name in self.network_names:
            self._add(name, getattr(config, name), weights)
        self.make_optimizers()

    def _add(self, name: str, spec: dict, weights: str | None) -> None:
        module, report = build_network(spec, self.num_classes, self.config.input_size, weights)
        module = module.to(self.device)
        if spec.get("arch") == "unet" and self.channels_last:
            module = module.to(memory_format=torch.channels_last)
        if hasattr(module, "set_memory_saving"):
            module.set_memory_saving(self.memory_saving)
            module.set_fused_attention(self.config.fused_attention)
        elif spec.get("arch") == "unet" and self.memory_saving:
            set_unet_memory_saving(module, True)
        self.networks[name] = module
        self.reports.append(report)

    def make_optimizers(self) -> None:
        fused = self.config.fused_optimizer and self.device.type in ("cpu", "cuda")
        self.optimizers = {
            name: torch.optim.Adam(
                net.parameters(), lr=self.config.lr, weight_decay=self.config.weight_decay, fused=fused or None
            )
            for name, net in self.networks.items()
        }

    def learning_rate(self, step: int) -> float:
        """Cosine decay from lr to 0 over the run (constant when cosine is off)."""
        if not self.config.cosine:
            return self.config.lr
        return 0.5 * self.config.lr * (1.0 + math.cos(math.pi * step / self.config.iterations))

    def step_scalars(self, step: int) -> dict[str, float]:
        """Per-step numbers the losses use (cross-teaching: λ(t)); tensors of a captured graph on CUDA."""
        return {}

    def losses(
        self, x_l: torch.Tensor, y_l: torch.Tensor, x_u: torch.Tensor, scalars: dict[str, float | torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def forward_losses(
        self, x_l: torch.Tensor, y_l: torch.Tensor, x_u: torch.Tensor, scalars: dict, cache: bool = True
    ) -> dict[str, torch.Tensor]:
        """Train-mode forward of every network and the losses, under the method's autocast."""
        with autocast(self.device, self.precision, cache=cache):
            return self.losses(x_l, y_l, x_u, scalars)

    def train_step(self, step: int, x_l: torch.Tensor, y_l: torch.Tensor, x_u: torch.Tensor) -> dict[str, float]:
        """One optimisation step of every network; returns the loss and its parts as floats. A non-finite loss
        updates nothing."""
        lr = self.learning_rate(step)
        for optimizer in self.optimizers.values():
            for group in optimizer.param_groups:
                group["lr"] = lr
        for net in self.networks.values():
            net.train()
        scalars = self.step_scalars(step)
        if self._capture is not None and not self._capture.accepts(x_l, y_l, x_u):
            self._drop_capture()  # other batch shapes, or a failed capture: eager from now on
        values = self._capture.run(self, x_l, y_l, x_u, scalars) if self._capture is not None else None
        if values is None:  # eager (or the capture failed: this step runs eagerly)
            for optimizer in self.optimizers.values():
                optimizer.zero_grad(set_to_none=True)
            parts = self.forward_losses(x_l, y_l, x_u, scalars)
            values = {k: float(v.detach()) for k, v in parts.items()}
            if math.isfinite(values["loss"]):
                self.scaler.scale(parts["loss"]).backward()
        if not math.isfinite(values["loss"]):
            return values
        for optimizer in self.optimizers.values():
            self.scaler.step(optimizer)
        self.scaler.update()
        return values | {"lr": lr}

    def _drop_capture(self) -> None:
        if self._capture is not None:
            self._capture.drop()
        self._capture = None

    @property
    def captured(self) -> bool:
        """Whether the steps now replay a captured CUDA graph."""
        return self._capture is not None and self._capture.graph is not None

    def close(self) -> None:
        """Drop the networks, optimizers and any captured graph, so their (GPU) memory can go at once."""
        self._drop_capture()
        self.networks.clear()
        self.optimizers.clear()

    def use_inference_layout(self) -> None:
        """Put the CNNs in channels_last: in inference it is faster on every device (CPU fp32: ResNet-34 U-Net,
        8 tiles at 224, 1.1 -> 0.83 s), though in CPU fp32 training it is not."""
        for spec_name, net in self.networks.items():
            if self.config_arch(spec_name) == "unet":
                net.to(memory_format=torch.channels_last)
        self.channels_last = True

    def forward(self, name: str, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last and self.config_arch(name) == "unet":
            x = x.contiguous(memory_format=torch.channels_last)
        return self.networks[name](x)

    def config_arch(self, name: str) -> str:
        """The architecture of network `name` ("unet", "swin_unet")."""
        return getattr(self.config, name, {}).get("arch", "")

    @torch.no_grad()
    def probabilities(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Softmax of each network (and of their mean, for two), in fp32."""
        for net in self.networks.values():
            net.eval()
        with autocast(self.device, self.precision):
            probs = {name: self.forward(name, x).float().softmax(dim=1) for name in self.networks}
        if len(probs) == 2:
            probs["mean"] = 0.5 * (probs["cnn"] + probs["swin"])
        return probs
