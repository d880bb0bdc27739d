"""What the segmentation methods share: networks from the config's specs, per-pixel probabilities, pooled IoU."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from ..device import autocast, return_freed_memory_promptly
from ..metrics import ConfusionCounts
from ..models import ModelSpec, build_model
from ..models.memory import set_unet_memory_saving, wants_memory_saving
from ..seg_config import SegConfig
from .base import Batch, Evaluation, Method


def _dense_view(t: torch.Tensor) -> torch.Tensor:
    """A channels_last 4-D tensor as the contiguous NHWC view of its storage; any other tensor as it is."""
    if t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last):
        return t.permute(0, 2, 3, 1)
    return t


class ChannelsLastFusedAdam(torch.optim.Adam):
    """``torch.optim.Adam(fused=True)`` whose kernel sees channels_last weights as the contiguous (NHWC) views of
    the same storage. PyTorch's CPU fused Adam copies every channels_last tensor in and out: one step over four
    512×512×3×3 weights took 32 ms instead of 10, the optimizer steps of a `cpu-small` bf16 step 44 ms instead of 26.
    The update is elementwise, so parameters and moments are bit-identical to those of ``torch.optim.Adam``; the
    state keeps the parameters' layout (checkpoints are unchanged)."""

    def _init_group(self, group, *tensor_lists, **kwargs):
        result = super()._init_group(group, *tensor_lists, **kwargs)
        if group.get("fused"):
            for tensors in (*tensor_lists, *kwargs.values()):
                if isinstance(tensors, list):
                    tensors[:] = [_dense_view(t) if isinstance(t, torch.Tensor) else t for t in tensors]
        return result


def build_network(spec: dict, num_classes: int, img_size: int, weights: str | None = None):
    """A network from a config dict (ModelSpec fields); weights overrides the spec's weights."""
    fields = dict(spec)
    if weights is not None:
        fields["weights"] = weights
    for key in ("depths", "num_heads"):
        if key in fields:
            fields[key] = tuple(fields[key])
    return build_model(ModelSpec(**fields), num_classes=num_classes, img_size=img_size)


class SegMethod(Method):
    """Base of the segmentation methods: one network per entry of ``config.networks`` (built in that order).

    Batches hold ``x_l`` (labeled images), ``y_l`` (their masks) and ``x_u`` (unlabeled images, maybe none);
    validation batches hold ``image`` and ``mask``. Outputs are each network's softmax and, for two, their mean."""

    config: SegConfig

    @property
    def num_classes(self) -> int:
        return len(self.run_info.get("classes", ["background", "foreground"]))

    def build(self, weights: str | None) -> None:
        # memory saving trades ~30% step time for memory: wanted on CPUs whose RAM the step would crowd
        self.memory_saving = wants_memory_saving(self.config, self.device, self.precision)
        if self.memory_saving:
            return_freed_memory_promptly()
        for name, spec in self.config.networks.items():
            module, report = build_network(spec, self.num_classes, self.config.input_size, weights)
            module = self.add_network(name, module, report)
            if spec.get("arch") == "unet" and self.channels_last:
                module.to(memory_format=torch.channels_last)
            if hasattr(module, "set_memory_saving"):
                module.set_memory_saving(self.memory_saving)
                module.set_fused_attention(self.config.fused_attention)
            elif spec.get("arch") == "unet" and self.memory_saving:
                set_unet_memory_saving(module, True)

    def make_optimizers(self) -> None:
        """As the base, but on a CPU with channels_last U-Nets the fused Adam of :class:`ChannelsLastFusedAdam`."""
        if not (self.device.type == "cpu" and self.channels_last and self.config.fused_optimizer):
            super().make_optimizers()
            return
        self.optimizers = {
            name: ChannelsLastFusedAdam(
                self.networks[name].parameters(), lr=self.config.lr, weight_decay=self.config.weight_decay, fused=True
            )
            for name in self.trainable()
        }

    def arch(self, name: str) -> str:
        """The architecture of network ``name`` ("unet", "swin_unet")."""
        return self.config.networks.get(name, {}).get("arch", "")

    def forward(self, name: str, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last and self.arch(name) == "unet":
            x = x.contiguous(memory_format=torch.channels_last)
        return self.networks[name](x)

    @property
    def default_output(self) -> str:
        return "mean" if len(self.networks) == 2 else next(iter(self.networks))

    def use_inference_layout(self) -> None:
        """Put the CNNs in channels_last: in inference it is faster on every device (CPU fp32: ResNet-34 U-Net,
        8 tiles at 224, 1.1 -> 0.83 s), though in CPU fp32 training it is not."""
        for name, net in self.networks.items():
            if self.arch(name) == "unet":
                net.to(memory_format=torch.channels_last)
        self.channels_last = True

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Softmax of each network (and of their mean, for two), in fp32."""
        self.eval_mode()
        with autocast(self.device, self.precision):
            probs = {name: self.forward(name, x).float().softmax(dim=1) for name in self.networks}
        if len(probs) == 2:
            first, second = probs.values()
            probs["mean"] = 0.5 * (first + second)
        return probs

    def evaluate(self, batches: Iterable[Batch]) -> Evaluation:
        """Pooled foreground IoU of each output on the validation tiles; the best output is the primary one."""
        counts: dict[str, ConfusionCounts] = {}
        for batch in batches:
            target = batch["mask"].cpu().numpy()
            for name, probs in self.predict(batch["image"]).items():
                counts.setdefault(name, ConfusionCounts()).add(probs.argmax(dim=1).cpu().numpy(), target)
        metrics = {f"iou_{name}": c.iou() for name, c in counts.items()}
        metric = max(metrics, key=metrics.__getitem__)
        return Evaluation(metrics, metric, metric.removeprefix("iou_"))
