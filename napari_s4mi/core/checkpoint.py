"""Checkpoints as safetensors plus JSON: loading never unpickles.

A checkpoint is a folder (`last/` or `best/` inside a run) holding one `<name>.safetensors` per network,
`optimizer.safetensors` with the optimizer tensors, and `state.json` with everything else. Folders are written
beside their final place and renamed in, so a cancelled or crashed run always leaves a complete checkpoint.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .errors import InputError

STATE_FILE = "state.json"
OPTIMIZER_FILE = "optimizer.safetensors"


def _module_tensors(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()}


def _optimizer_split(optimizer: torch.optim.Optimizer, prefix: str) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer state dict into tensors (for safetensors) and a JSON-able rest."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for param_id, entries in state["state"].items():
        for key, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"{prefix}.{param_id}.{key}"] = value.detach().to("cpu").contiguous()
            else:
                scalars.setdefault(str(param_id), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _optimizer_join(tensors: dict[str, torch.Tensor], meta: dict, prefix: str) -> dict:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        head, param_id, key = name.split(".", 2)
        if head == prefix:
            state.setdefault(int(param_id), {})[key] = value
    for param_id, entries in meta["scalars"].items():
        state.setdefault(int(param_id), {}).update(entries)
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(
    folder: Path,
    networks: dict[str, torch.nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    state: dict[str, Any],
) -> Path:
    """Write a complete checkpoint folder atomically (write aside, then rename into place)."""
    folder = Path(folder)
    staging = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name, module in networks.items():
        save_file(_module_tensors(module), str(staging / f"{name}.safetensors"))
    optimizer_tensors: dict[str, torch.Tensor] = {}
    optimizer_meta: dict[str, Any] = {}
    for name, optimizer in optimizers.items():
        tensors, meta = _optimizer_split(optimizer, name)
        optimizer_tensors.update(tensors)
        optimizer_meta[name] = meta
    save_file(optimizer_tensors, str(staging / OPTIMIZER_FILE))
    full_state = {**state, "networks": sorted(networks), "optimizers": optimizer_meta}
    (staging / STATE_FILE).write_text(json.dumps(full_state, indent=2))
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        folder.rename(old)
    staging.rename(folder)
    shutil.rmtree(old, ignore_errors=True)
    return folder


def read_state(folder: Path) -> dict[str, Any]:
    """The JSON part of a checkpoint; InputError when the folder is not a complete checkpoint."""
    path = Path(folder) / STATE_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a complete s4mi checkpoint ({exc}); pick a run folder written by s4mi") from exc


def load_networks(folder: Path, networks: dict[str, torch.nn.Module]) -> None:
    """Load each network's weights (strict: architecture must match the run's config)."""
    for name, module in networks.items():
        path = Path(folder) / f"{name}.safetensors"
        if not path.exists():
            raise InputError(f"{path}: missing network weights; the checkpoint is incomplete")
        device = next(module.parameters()).device
        module.load_state_dict(load_file(str(path), device=str(device)))


def load_optimizers(folder: Path, optimizers: dict[str, torch.optim.Optimizer]) -> None:
    """Restore optimizer moments and step counts written by save_checkpoint."""
    state = read_state(folder)
    tensors = load_file(str(Path(folder) / OPTIMIZER_FILE))
    for name, optimizer in optimizers.items():
        optimizer.load_state_dict(_optimizer_join(tensors, state["optimizers"][name], name))
        _match_parameter_layouts(optimizer)


def _match_parameter_layouts(optimizer: torch.optim.Optimizer) -> None:
    """Give each restored moment its parameter's memory layout (channels_last parameters were saved contiguous;
    fused Adam refuses the mismatch)."""
    for group in optimizer.param_groups:
        for param in group["params"]:
            moments = optimizer.state.get(param, {})
            for key, value in moments.items():
                if torch.is_tensor(value) and value.shape == param.shape and value.stride() != param.stride():
                    moments[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)
