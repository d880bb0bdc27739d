"""Pretrained-weight resolution: ImageNet weights of timm models (cached, fetched once) or a user's safetensors file.

Weight specs accepted by the builders:

- ``"imagenet"``: ImageNet weights of the matching timm model, from the Hugging Face cache (``HF_HUB_CACHE``,
  else ``HF_HOME/hub``, else ``~/.cache/huggingface/hub``, read at call time); when absent they are downloaded
  once into that cache (see :mod:`.fetch`: ``HF_HUB_OFFLINE`` honoured, short connection timeout). When they
  cannot be had the model keeps its random initialisation and the report says why and how to pre-fetch.
- ``"none"`` / ``"random"``: random initialisation.
- a path to a ``.safetensors`` file. Pickled checkpoints (``.pt``, ``.pth``, ``.ckpt``, ``.bin``) are
  refused, since unpickling an untrusted file can run arbitrary code.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import InputError

IMAGENET = "imagenet"
RANDOM_SPECS = ("none", "random", "")


@dataclass
class WeightsReport:
    """Where a model's initial weights came from, in a line the user can read."""

    source: str  # 'imagenet-cache' | 'imagenet-download' | 'file' | 'random'
    message: str
    loaded: int = 0
    total: int = 0


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache folder, from the environment as it is now (not at import time)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "huggingface" / "hub"


def hf_hub_id(timm_name: str) -> str | None:
    """The Hugging Face repository of a timm model's (default or tagged) pretrained weights, if any."""
    try:
        from timm.models import get_pretrained_cfg

        cfg = get_pretrained_cfg(timm_name)
    except Exception:
        return None
    hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if not hub_id:
        return None
    if hub_id.endswith("/"):  # old-style cfg: 'timm/' + model name
        hub_id = hub_id + timm_name
    return hub_id


def resolve_timm_checkpoint(timm_name: str, cache_dir: str | Path | None = None) -> Path | None:
    """Path of ``model.safetensors`` for a timm model in the local HF cache, or None. Never downloads."""
    hub_id = hf_hub_id(timm_name)
    if hub_id is None:
        return None
    try:
        from huggingface_hub import hf_hub_download

        found = hf_hub_download(
            hub_id,
            filename="model.safetensors",
            cache_dir=str(cache_dir if cache_dir is not None else hf_cache_dir()),
            local_files_only=True,
        )
    except Exception:
        return None
    path = Path(found)
    return path if path.is_file() else None


def load_state_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a ``.safetensors`` state dict; any other kind of file is an InputError (no pickles)."""
    path = Path(path).expanduser()
    if path.suffix.lower() != ".safetensors":
        raise InputError(
            f"{path.name}: only .safetensors weight files are accepted (pickled .pt/.pth/.ckpt files are "
            "refused for safety); convert it with safetensors.torch.save_file"
        )
    if not path.is_file():
        raise InputError(f"{path}: weight file not found; give the path of an existing .safetensors file")
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:
        raise InputError(f"{path.name}: not a readable safetensors file ({exc})") from exc


def rename_keys(state: Mapping[str, torch.Tensor], prefix_map: Mapping[str, str]) -> dict[str, torch.Tensor]:
    """Rename keys by prefix: the first matching ``old -> new`` of ``prefix_map`` applies ('' matches all)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        for old, new in prefix_map.items():
            if key.startswith(old):
                key = new + key[len(old) :]
                break
        out[key] = value
    return out


def load_matching(
    module: nn.Module, state: Mapping[str, torch.Tensor], prefix_map: Mapping[str, str] | None = None
) -> tuple[int, int]:
    """Copy the tensors of ``state`` whose (renamed) names and shapes match ``module``'s.

    Returns ``(loaded, total)``: tensors copied and tensors in the module's state dict. Extra, missing or
    mis-shaped keys are skipped silently.
    """
    if prefix_map:
        state = rename_keys(state, prefix_map)
    own = module.state_dict()
    loaded = 0
    with torch.no_grad():
        for name, target in own.items():
            source = state.get(name)
            if source is None or tuple(source.shape) != tuple(target.shape):
                continue
            target.copy_(source.to(dtype=target.dtype))
            loaded += 1
    return loaded, len(own)


def is_random_spec(weights: str | None) -> bool:
    """True for the specs that ask for random initialisation."""
    return weights is None or str(weights).strip().lower() in RANDOM_SPECS


def is_imagenet_spec(weights: str | None) -> bool:
    """True for the 'imagenet' spec."""
    return weights is not None and str(weights).strip().lower() == IMAGENET


def random_report(reason: str = "random initialisation") -> WeightsReport:
    """A report for a randomly initialised model."""
    return WeightsReport(source="random", message=reason)


def missing_imagenet_report(timm_name: str, reason: str) -> WeightsReport:
    """The report when ImageNet weights could not be had: the model, why, and how to pre-fetch them."""
    return random_report(
        f"no ImageNet weights for {timm_name}: {reason}; random initialisation "
        f"(pre-fetch with `s4mi weights fetch {timm_name}` where there is a network)"
    )


def imagenet_source(status: str) -> tuple[str, str]:
    """The report source and wording of a checkpoint that was 'cached' or 'fetched'."""
    return ("imagenet-download", "downloaded") if status == "fetched" else ("imagenet-cache", "from the local cache")


def adapt_first_conv(state: dict[str, torch.Tensor], key: str, in_chans: int) -> dict[str, torch.Tensor]:
    """Adapt a pretrained RGB first convolution to ``in_chans`` input channels (timm's rule)."""
    weight = state.get(key)
    if weight is None or weight.ndim != 4 or weight.shape[1] == in_chans:
        return state
    from timm.models import adapt_input_conv

    state = dict(state)
    state[key] = adapt_input_conv(in_chans, weight)
    return state
