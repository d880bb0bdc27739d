"""Saliency maps for image classifiers (any module mapping (N, 3, S, S) -> logits (N, K)) and slide stitching.

* :func:`gradient_saliency`: |d logit_c / d input|, max over the colour channels (the paper's maps).
* :func:`grad_cam`: Grad-CAM on a conv layer: ReLU(sum_k w_k A_k), w_k the spatial mean of d logit_c / d A_k,
  upsampled bilinearly to the input size.

Both run in fp32 (autocast off) with every module in eval mode and leave the model as they found it: module
training flags and parameters' ``requires_grad`` are restored and no parameter's ``.grad`` is touched
(gradients are taken with ``torch.autograd.grad`` with respect to the input or activation only; Grad-CAM
catches the activation with a forward hook and needs no module backward hook, which clashes with in-place ReLUs).
With ``normalise=True`` (default) each map is min-max scaled to [0, 1] per image, i.e. per tile;
:func:`slide_saliency` instead stitches the raw tile maps and scales once per slide, so tiles stay comparable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .inference import SlideLike, network_inputs
from .preprocess import Tile, TilingSpec, tile_grid

ClassIndex = int | Sequence[int] | torch.Tensor
MapsForBatch = Callable[[torch.Tensor], torch.Tensor]


def gradient_saliency(
    model: nn.Module, x: torch.Tensor, class_index: ClassIndex, normalise: bool = True
) -> torch.Tensor:
    """Gradient saliency (N, S, S) float32 on ``x``'s device for class ``class_index`` (one int or one per image)."""
    with _inspecting(model):
        inputs = _model_inputs(model, x).requires_grad_(True)
        score = _class_scores(model(inputs), class_index)
        (grad,) = torch.autograd.grad(score, inputs)
    maps = grad.detach().abs().amax(dim=1)
    return (normalise_maps(maps) if normalise else maps).to(x.device)


def grad_cam(
    model: nn.Module, x: torch.Tensor, class_index: ClassIndex, layer: nn.Module, normalise: bool = True
) -> torch.Tensor:
    """Grad-CAM (N, S, S) float32 on ``x``'s device from the output of ``layer`` (e.g. a timm ResNet's
    ``model.layer4``). The activation is caught by a forward hook, removed afterwards even on error."""
    caught: list[torch.Tensor] = []

    def keep(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
        caught.append(output)

    with _inspecting(model):
        inputs = _model_inputs(model, x).requires_grad_(True)  # so the activation is in the graph
        handle = layer.register_forward_hook(keep)
        try:
            logits = model(inputs)
        finally:
            handle.remove()
        if len(caught) != 1:
            raise ValueError(f"layer must run once per forward pass; it ran {len(caught)} times")
        if not isinstance(caught[0], torch.Tensor) or caught[0].ndim != 4:
            raise ValueError(f"layer must output an (N, C, h, w) tensor; got {type(caught[0]).__name__}")
        (activation,) = caught
        (grad,) = torch.autograd.grad(_class_scores(logits, class_index), activation)
    weights = grad.detach().mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * activation.detach()).sum(dim=1, keepdim=True))
    maps = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    return (normalise_maps(maps) if normalise else maps).to(x.device)


def normalise_maps(maps: torch.Tensor) -> torch.Tensor:
    """Min-max scale each map of (N, H, W) to [0, 1] float32; a constant map becomes all zeros."""
    maps = maps.float()
    low = maps.amin(dim=(-2, -1), keepdim=True)
    span = maps.amax(dim=(-2, -1), keepdim=True) - low
    return torch.where(span > 0, (maps - low) / span.clamp_min(torch.finfo(maps.dtype).tiny), torch.zeros_like(maps))


def slide_saliency(
    slide: SlideLike,
    maps_for_batch: MapsForBatch,
    spec: TilingSpec,
    red_norm: bool = False,
    batch_size: int = 8,
) -> np.ndarray:
    """A float32 (H, W) saliency map in [0, 1] at the slide's resolution.

    The slide is tiled as in prediction (``tile_grid``: 480 px tiles past 960 px, else the whole slide resized
    to the network size) and each batch of normalised CPU inputs (N, 3, S, S), made by ``network_inputs``,
    goes to ``maps_for_batch``, which returns maps (N, S, S) (e.g. ``gradient_saliency(..., normalise=False)``).
    Each map is resized back to its tile's size, cropped to the slide and stitched; the stitched raw maps are
    then min-max scaled once over the whole slide so that tiles are comparable (per-tile normalised maps would
    make every tile span [0, 1] whatever its evidence).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1; got {batch_size}")
    height, width = (int(v) for v in slide.shape)
    tiles = tile_grid(height, width, spec)
    out = np.zeros((height, width), np.float32)
    for batch in _batches(tiles, batch_size):
        inputs = network_inputs(slide, batch, spec.input_size, red_norm)
        maps = maps_for_batch(inputs)
        if maps.ndim != 3 or maps.shape[0] != len(batch):
            raise ValueError(f"maps_for_batch returned shape {tuple(maps.shape)}; expected ({len(batch)}, S, S)")
        maps = maps.detach().float().cpu()
        for tile, tile_map in zip(batch, maps, strict=True):
            vh, vw = tile.valid_shape(height, width)
            out[tile.y : tile.y + vh, tile.x : tile.x + vw] = _resized(tile_map, tile.h, tile.w)[:vh, :vw]
    return normalise_maps(torch.from_numpy(out)).numpy()


# --------------------------------------------------------------------------------------------- helpers
@contextmanager
def _inspecting(model: nn.Module) -> Iterator[None]:
    """Eval mode, frozen parameters, gradients on and autocast off; every flag restored on exit."""
    modes = [(m, m.training) for m in model.modules()]
    frozen = [(p, p.requires_grad) for p in model.parameters()]
    device_type = _device(model).type
    try:
        model.eval()
        for p, _ in frozen:
            p.requires_grad_(False)
        with torch.enable_grad(), torch.autocast(device_type=device_type, enabled=False):
            yield
    finally:
        for m, mode in modes:
            m.training = mode
        for p, flag in frozen:
            p.requires_grad_(flag)


def _device(model: nn.Module) -> torch.device:
    tensor = next(model.parameters(), None)
    return tensor.device if tensor is not None else torch.device("cpu")


def _model_inputs(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A detached fp32 copy of a (N, 3, S, S) batch on the model's device."""
    if x.ndim != 4:
        raise ValueError(f"expected an (N, C, S, S) batch; got shape {tuple(x.shape)}")
    return x.detach().to(_device(model), torch.float32, copy=True)


def _class_scores(logits: torch.Tensor, class_index: ClassIndex) -> torch.Tensor:
    """Sum over the batch of each image's logit for its class (images are independent in eval mode)."""
    if logits.ndim != 2:
        raise ValueError(f"the model must return logits (N, K); got shape {tuple(logits.shape)}")
    n, k = logits.shape
    index = torch.as_tensor(class_index, dtype=torch.long, device=logits.device).reshape(-1)
    if index.numel() not in (1, n):
        raise ValueError(f"class_index must be one int or one per image ({n}); got {index.numel()}")
    index = index.expand(n)
    if index.min() < 0 or index.max() >= k:
        raise ValueError(f"class_index must lie in [0, {k}); got {class_index}")
    return logits.float().gather(1, index[:, None]).sum()


def _batches(tiles: Sequence[Tile], size: int) -> Iterator[Sequence[Tile]]:
    for start in range(0, len(tiles), size):
        yield tiles[start : start + size]


def _resized(tile_map: torch.Tensor, h: int, w: int) -> np.ndarray:
    """Bilinear resize of one (S, S) map to (h, w); anti-aliased when shrinking."""
    if tile_map.shape == (h, w):
        return tile_map.numpy()
    shrink = h < tile_map.shape[0] or w < tile_map.shape[1]
    resized = F.interpolate(tile_map[None, None], size=(h, w), mode="bilinear", align_corners=False, antialias=shrink)
    return resized[0, 0].numpy()
