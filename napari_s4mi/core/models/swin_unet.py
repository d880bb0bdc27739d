"""Swin-UNet (Cao et al. 2021): a U-shaped pure-transformer segmentation network from timm's Swin parts.

Layout, for ``n = len(depths)`` levels (level ``l`` works at H/4/2^l with ``embed_dim * 2^l`` channels):

- encoder: 4×4 patch embedding, then one Swin stage per level (patch merging first for ``l > 0``, as in
  timm, so parameter names are those of timm's ``SwinTransformer`` and ImageNet checkpoints load by
  name); the last level (H/32 for four levels) is the bottleneck, followed by a LayerNorm;
- decoder, from the bottleneck up: patch expanding (×2, channels halved), then at each level ``l < n-1``
  the skip feature of encoder level ``l`` (its stage output, as drawn in the paper's figure) is
  concatenated and projected back by a linear layer, followed by ``decoder_depths[l]`` Swin blocks and,
  above level 0, another patch expanding;
- head: LayerNorm, final ×4 patch expanding and a 1×1 projection to the classes.

``decoder_depths`` is indexed by level like ``depths``; its last entry (the bottleneck level) is unused
since the bottleneck belongs to the encoder, and is kept for compatibility with the reference
configuration (2, 2, 2, 1).

Window size: the bottleneck grid ``g = img_size / 32`` must be a multiple of the window so that every
level tiles into whole windows. A window that does not fit is replaced by :func:`auto_window_size`.
Where no divisor of ``g`` is usable (``g`` = 9, 11, 13, ...) the window stays 7 and timm pads the
feature maps to whole windows.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
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

PATCH_SIZE = 4
IMAGENET_SWINS = {
    96: "swin_tiny_patch4_window7_224",
    128: "swin_base_patch4_window7_224",
    192: "swin_large_patch4_window7_224",
}


def bottleneck_grid(img_size: int, num_levels: int = 4) -> int:
    """Side of the bottleneck token grid (img_size / 32 for four levels)."""
    return img_size // (PATCH_SIZE * 2 ** (num_levels - 1))


def auto_window_size(img_size: int, num_levels: int = 4) -> int:
    """A window that tiles every level: 7 when the bottleneck grid is a multiple of 7 (224, 448), else the
    largest divisor of the grid that is at most 8 (128 → 4, 160 → 5, 192 → 6, 256 → 8); 7 with padding when
    that divisor would be below 4 on a grid larger than 8."""
    grid = bottleneck_grid(img_size, num_levels)
    if grid % 7 == 0:
        return 7
    best = max(d for d in range(1, min(grid, 8) + 1) if grid % d == 0)
    if best < 4 and grid > 8:
        return 7
    return best


def resolve_window_size(img_size: int, window_size: int | None, num_levels: int = 4) -> int:
    """The requested window when it tiles the bottleneck grid, else :func:`auto_window_size`."""
    grid = bottleneck_grid(img_size, num_levels)
    if window_size and window_size > 0 and grid % window_size == 0:
        return window_size
    return auto_window_size(img_size, num_levels)


class PatchExpand(nn.Module):
    """Upsample NHWC tokens ×``scale``: linear to scale² × out_dim channels, pixel shuffle, LayerNorm."""

    def __init__(self, dim: int, scale: int = 2, out_dim: int | None = None) -> None:
        super().__init__()
        self.scale = scale
        self.out_dim = out_dim or dim // scale
        self.expand = nn.Linear(dim, scale * scale * self.out_dim, bias=False)
        self.norm = nn.LayerNorm(self.out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W, dim) → (B, scale·H, scale·W, out_dim)."""
        b, h, w, _ = x.shape
        s = self.scale
        x = self.expand(x).reshape(b, h, w, s, s, self.out_dim)
        x = x.permute(0, 1, 3, 2, 4, 5).reshape(b, h * s, w * s, self.out_dim)
        return self.norm(x)


def _drop_path_rates(rate: float, depths: Sequence[int]) -> list[list[float]]:
    """Stochastic-depth rates rising linearly over all blocks, split per level."""
    total = sum(depths)
    flat = [rate * i / max(total - 1, 1) for i in range(total)]
    out, start = [], 0
    for depth in depths:
        out.append(flat[start : start + depth])
        start += depth
    return out


class SwinUNet(nn.Module):
    """Swin-UNet: (N, in_chans, img_size, img_size) images → (N, num_classes, img_size, img_size) logits."""

    def __init__(
        self,
        img_size: int = 224,
        num_classes: int = 2,
        in_chans: int = 3,
        embed_dim: int = 96,
        depths: Sequence[int] = (2, 2, 2, 2),
        decoder_depths: Sequence[int] = (2, 2, 2, 1),
        num_heads: Sequence[int] = (3, 6, 12, 24),
        window_size: int | None = 7,
        drop_path_rate: float = 0.1,
    ) -> None:
        super().__init__()
        from timm.layers import PatchEmbed
        from timm.models.swin_transformer import SwinTransformerStage

        levels = len(depths)
        unit = PATCH_SIZE * 2 ** (levels - 1)
        if img_size % unit or img_size < unit:
            raise InputError(f"Swin-UNet input size {img_size} must be a positive multiple of {unit}")
        if len(num_heads) != levels or len(decoder_depths) < levels - 1:
            raise InputError("Swin-UNet: num_heads needs one entry per level and decoder_depths at least n-1")
        self.img_size, self.num_classes, self.in_chans = img_size, num_classes, in_chans
        self.window_size = resolve_window_size(img_size, window_size, levels)
        dims = [embed_dim * 2**i for i in range(levels)]
        grids = [img_size // PATCH_SIZE // 2**i for i in range(levels)]
        self.dims = dims

        self.patch_embed = PatchEmbed(
            img_size=img_size,
            patch_size=PATCH_SIZE,
            in_chans=in_chans,
            embed_dim=embed_dim,
            norm_layer=nn.LayerNorm,
            output_fmt="NHWC",
        )
        enc_dpr = _drop_path_rates(drop_path_rate, depths)
        self.layers = nn.ModuleList(
            SwinTransformerStage(
                dim=dims[max(i - 1, 0)],
                out_dim=dims[i],
                input_resolution=(grids[max(i - 1, 0)],) * 2,
                depth=depths[i],
                downsample=i > 0,
                num_heads=num_heads[i],
                window_size=self.window_size,
                drop_path=enc_dpr[i],
            )
            for i in range(levels)
        )
        self.norm = nn.LayerNorm(dims[-1])

        dec_depths = list(decoder_depths[: levels - 1])
        dec_dpr = _drop_path_rates(drop_path_rate, dec_depths)
        self.bottleneck_expand = PatchExpand(dims[-1])
        self.concat_proj = nn.ModuleList(nn.Linear(2 * dims[lv], dims[lv]) for lv in range(levels - 1))
        self.decoder_stages = nn.ModuleList(
            SwinTransformerStage(
                dim=dims[lv],
                out_dim=dims[lv],
                input_resolution=(grids[lv],) * 2,
                depth=dec_depths[lv],
                downsample=False,
                num_heads=num_heads[lv],
                window_size=self.window_size,
                drop_path=dec_dpr[lv],
            )
            for lv in range(levels - 1)
        )
        self.up_expand = nn.ModuleList(PatchExpand(dims[lv]) if lv > 0 else nn.Identity() for lv in range(levels - 1))
        self.norm_up = nn.LayerNorm(dims[0])
        self.final_expand = PatchExpand(dims[0], scale=PATCH_SIZE, out_dim=dims[0])
        self.head = nn.Linear(dims[0], num_classes)
        self.apply(_init_weights)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Bottleneck tokens (NHWC) and the skip features of levels 0..n-2."""
        x = self.patch_embed(x)
        skips = []
        for stage in self.layers:
            x = stage(x)
            skips.append(x)
        return self.norm(x), skips[:-1]

    def decode(self, x: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        """Upsample the bottleneck through the levels, fusing the skips; NHWC tokens at H/4."""
        x = self.bottleneck_expand(x)
        for lv in reversed(range(len(skips))):
            x = self.concat_proj[lv](torch.cat([x, skips[lv]], dim=-1))
            x = self.decoder_stages[lv](x)
            x = self.up_expand[lv](x)
        return self.norm_up(x)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Final ×4 expansion and head on NHWC tokens at H/4, as (N, num_classes, H, W) logits.

        Same maths as ``head(final_expand(x))``, in another order: the LayerNorm and the head act per token,
        so they run before the pixel shuffle, and only the num_classes-channel result is shuffled. The
        full-resolution embed_dim-channel tensor is never copied (the largest activation of the network)."""
        b, h, w, _ = x.shape
        expand, s = self.final_expand, self.final_expand.scale
        y = expand.norm(expand.expand(x).view(b, h, w, s, s, expand.out_dim))
        y = self.head(y)  # (b, h, w, s, s, K)
        return y.permute(0, 5, 1, 3, 2, 4).reshape(b, self.num_classes, h * s, w * s)

    def set_memory_saving(self, enabled: bool = True) -> None:
        """Activation checkpointing: every Swin stage and the head keep only their inputs and recompute the
        rest in the backward pass (the same numbers, RNG included; about a third less activation memory
        for ~15% more compute)."""
        for stage in [*self.layers, *self.decoder_stages]:
            stage.grad_checkpointing = enabled
        self.checkpoint_head = enabled

    def set_fused_attention(self, enabled: bool = True) -> None:
        """Window attention through ``scaled_dot_product_attention`` (timm's fused path) or explicit softmax."""
        for module in self.modules():
            if hasattr(module, "fused_attn") and hasattr(module, "relative_position_bias_table"):
                module.fused_attn = enabled

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, num_classes, H, W)."""
        x, skips = self.encode(x)
        x = self.decode(x, skips)
        if getattr(self, "checkpoint_head", False) and torch.is_grad_enabled():
            from torch.utils.checkpoint import checkpoint

            return checkpoint(self.logits, x, use_reentrant=False)
        return self.logits(x)


def _init_weights(module: nn.Module) -> None:
    """Truncated-normal linear weights and unit LayerNorms, as in Swin (position tables keep timm's)."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


# ---------------------------------------------------------------- pretrained weights


def _crop_or_resize_table(table: torch.Tensor, old_window: int, new_window: int) -> torch.Tensor | None:
    """Adapt a ((2w-1)², heads) relative-position table to another window: exact centre crop when smaller,
    timm's interpolation when larger; None when it cannot be adapted."""
    old_side, new_side = 2 * old_window - 1, 2 * new_window - 1
    if table.ndim != 2 or table.shape[0] != old_side**2:
        return None
    if new_side <= old_side:
        grid = table.reshape(old_side, old_side, -1)
        lo = (old_side - new_side) // 2
        return grid[lo : lo + new_side, lo : lo + new_side].reshape(new_side**2, -1).clone()
    try:
        from timm.layers import resize_rel_pos_bias_table

        return resize_rel_pos_bias_table(table, (new_window, new_window), (new_side**2, table.shape[1]))
    except Exception:
        return None


def convert_swin_state(
    state: dict[str, torch.Tensor], window_size: int, mirror_decoder: bool = True
) -> dict[str, torch.Tensor]:
    """Map a Swin Transformer classifier state dict (timm or original Microsoft layout) onto SwinUNet names.

    Drops non-persistent buffers and the classifier, adapts relative-position tables to ``window_size`` and,
    with ``mirror_decoder``, copies encoder level ``l`` blocks to decoder level ``l`` (as the reference does).
    """
    microsoft_layout = "layers.0.downsample.reduction.weight" in state
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if "relative_position_index" in key or "attn_mask" in key or key.startswith("head"):
            continue
        if microsoft_layout:
            key = re.sub(r"layers\.(\d+)\.downsample", lambda m: f"layers.{int(m.group(1)) + 1}.downsample", key)
        if key.endswith("relative_position_bias_table"):
            old_window = round(((value.shape[0] ** 0.5) + 1) / 2)
            value = _crop_or_resize_table(value, old_window, window_size) if old_window != window_size else value
            if value is None:
                continue
        out[key] = value
    if mirror_decoder:
        for key, value in list(out.items()):
            match = re.match(r"layers\.(\d+)\.blocks\.(.*)", key)
            if match:
                out.setdefault(f"decoder_stages.{match.group(1)}.blocks.{match.group(2)}", value)
    return out


def _report(model: SwinUNet, state: dict[str, torch.Tensor], source: str, label: str) -> WeightsReport:
    """Load a converted state into the model and describe the result."""
    state = adapt_first_conv(state, "patch_embed.proj.weight", model.in_chans)
    loaded, total = load_matching(model, state)
    msg = f"{label}: {loaded}/{total} tensors loaded (encoder, decoder blocks mirrored from the encoder)"
    return WeightsReport(source, msg, loaded, total)


def _load_imagenet(model: SwinUNet, embed_dim: int) -> WeightsReport:
    """ImageNet weights of the Swin Transformer of the same width, from the cache (downloaded once when missing)."""
    name = IMAGENET_SWINS.get(embed_dim)
    if name is None:
        return random_report(f"no ImageNet Swin Transformer has embed_dim={embed_dim}: random initialisation")
    found = imagenet_checkpoint([name])
    if found.path is None:
        return missing_imagenet_report(name, found.reason)
    state = convert_swin_state(load_state_file(found.path), model.window_size)
    source, where = imagenet_source(found.status)
    report = _report(model, state, source, f"ImageNet weights of {name} {where}")
    if report.loaded == 0:
        return random_report(f"ImageNet weights of {name} do not fit this Swin-UNet: random initialisation")
    return report


def _load_file(model: SwinUNet, path: Path) -> WeightsReport:
    """Weights from a safetensors file: a SwinUNet checkpoint or a Swin Transformer classifier."""
    raw = load_state_file(path)
    is_swin_unet = any(k.startswith(("decoder_stages.", "final_expand.")) for k in raw)
    state = dict(raw) if is_swin_unet else convert_swin_state(raw, model.window_size)
    report = _report(model, state, "file", path.name)
    if report.loaded == 0:
        raise InputError(f"{path.name}: no tensor matches this Swin-UNet (embed_dim {model.dims[0]}); check the file")
    return report


def build_swin_unet(
    num_classes: int = 2,
    img_size: int = 224,
    embed_dim: int = 96,
    depths: Sequence[int] = (2, 2, 2, 2),
    num_heads: Sequence[int] = (3, 6, 12, 24),
    weights: str = "imagenet",
    in_chans: int = 3,
    **kwargs: object,
) -> tuple[SwinUNet, WeightsReport]:
    """A SwinUNet and the report of its weights ('imagenet', 'none'/'random' or a .safetensors path)."""
    model = SwinUNet(
        img_size=img_size,
        num_classes=num_classes,
        in_chans=in_chans,
        embed_dim=embed_dim,
        depths=tuple(depths),
        num_heads=tuple(num_heads),
        **kwargs,  # type: ignore[arg-type]
    )
    if is_random_spec(weights):
        return model, random_report()
    if is_imagenet_spec(weights):
        return model, _load_imagenet(model, embed_dim)
    return model, _load_file(model, Path(weights).expanduser())
