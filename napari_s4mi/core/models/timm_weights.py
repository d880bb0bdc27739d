"""ImageNet weights into a timm model built with ``pretrained=False`` (e.g. a classification backbone).

``timm.create_model(name, pretrained=False, num_classes=0, img_size=...)`` builds the network without touching
the network; :func:`load_imagenet_into` then fills it from the cached (or once downloaded) ``model.safetensors``
of ``name``. The checkpoint goes through the model's own timm filter first (``checkpoint_filter_fn`` of its
module: a ViT's position embeddings are resampled to another ``img_size``, a Swin's relative position tables
to another window), the classifier head is skipped, and the first convolution is adapted to the model's input
channels. Tensors whose names or shapes still differ are left at their random initialisation.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

import torch
from torch import nn

from .fetch import imagenet_checkpoint
from .weights import (
    WeightsReport,
    adapt_first_conv,
    imagenet_source,
    load_matching,
    load_state_file,
    missing_imagenet_report,
    random_report,
)


def load_imagenet_into(model: nn.Module, timm_name: str, progress: bool = True) -> WeightsReport:
    """Load the ImageNet weights of ``timm_name`` into ``model`` (built by timm without them) and report.

    Never raises for missing weights: offline or unreachable, the model keeps its random initialisation and
    the report (source 'random') says why and how to pre-fetch.
    """
    found = imagenet_checkpoint([timm_name], progress)
    if found.path is None:
        return missing_imagenet_report(timm_name, found.reason)
    state = fit_timm_state(model, load_state_file(found.path))
    loaded, total = load_matching(model, state)
    if loaded == 0:
        return random_report(f"ImageNet weights of {timm_name} do not fit this network: random initialisation")
    source, where = imagenet_source(found.status)
    msg = f"ImageNet weights of {timm_name} {where}: {loaded}/{total} tensors (classifier head skipped)"
    return WeightsReport(source, msg, loaded, total)


def fit_timm_state(model: nn.Module, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A pretrained timm state dict made to fit ``model``: timm's filter, no classifier head, first conv adapted."""
    state = dict(state)
    filter_fn = getattr(sys.modules.get(type(model).__module__), "checkpoint_filter_fn", None)
    if callable(filter_fn):
        try:
            state = dict(filter_fn(state, model))
        except Exception:  # a filter that cannot handle this pairing: mis-shaped tensors are skipped below
            pass
    cfg = getattr(model, "pretrained_cfg", None) or {}
    heads = cfg.get("classifier") or ()
    heads = (heads,) if isinstance(heads, str) else tuple(heads)
    state = {k: v for k, v in state.items() if not any(k == h or k.startswith(h + ".") for h in heads)}
    first_conv = cfg.get("first_conv")
    if isinstance(first_conv, str):
        key = f"{first_conv}.weight"
        target = model.state_dict().get(key)
        if target is not None and target.ndim == 4:
            state = adapt_first_conv(state, key, int(target.shape[1]))
    return state
