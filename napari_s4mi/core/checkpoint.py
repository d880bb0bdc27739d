"""Checkpoints as safetensors plus JSON: loading never unpickles.

A checkpoint is a folder (`last/` or `best/` inside a run) holding one `<name>.safetensors` per network,
`optimizer.safetensors` with the optimizer tensors, and `state.json` with everything else. Folders are written
beside their final place (`last.tmp`) and renamed in (the previous one set aside as `last.old` for that moment), so
a cancelled or crashed run always leaves a complete checkpoint under one of those names: :func:`recover` puts it
back in place, :func:`checkpoint_problem` tells a complete checkpoint from a torn one without loading it.
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .disk import describe_os_error
from .errors import InputError, OutputError

STATE_FILE = "state.json"
OPTIMIZER_FILE = "optimizer.safetensors"
STAGING, ASIDE = ".tmp", ".old"
DAMAGED = "truncated or damaged checkpoint file"


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
    """Write a complete checkpoint folder atomically (write aside, then rename into place). A failed write
    (OutputError for a full or read-only disk) removes its staging folder and keeps the previous checkpoint."""
    folder = Path(folder)
    staging = folder.with_name(folder.name + STAGING)
    try:
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
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, OSError):
            kept = f"the previous checkpoint in {folder} is kept" if folder.exists() else "no checkpoint was written"
            raise OutputError(f"{describe_os_error(exc, 'writing a checkpoint')}; {kept}") from exc
        raise
    old = folder.with_name(folder.name + ASIDE)
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        folder.rename(old)
    staging.rename(folder)
    shutil.rmtree(old, ignore_errors=True)
    return folder


def checkpoint_bytes(networks: dict[str, torch.nn.Module], optimizers: dict[str, torch.optim.Optimizer]) -> int:
    """About how many bytes one checkpoint takes: the networks' tensors and two Adam moments per trained one."""
    weights = sum(t.numel() * t.element_size() for m in networks.values() for t in m.state_dict().values())
    params = (p for o in optimizers.values() for g in o.param_groups for p in g["params"])
    return weights + sum(2 * p.numel() * 4 for p in params) + 2**16


def _safetensors_problem(path: Path) -> str | None:
    """Why a .safetensors file is not whole (missing, short header, data shorter than its header says), or None."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                return f"{path.name} is truncated"
            (length,) = struct.unpack("<Q", head)
            if 8 + length > size:
                return f"{path.name} is truncated"
            header = json.loads(fh.read(length))
    except FileNotFoundError:
        return f"{path.name} is missing"
    except (OSError, ValueError) as exc:
        return f"{path.name} is unreadable ({exc.__class__.__name__})"
    ends = [entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"]
    return f"{path.name} is truncated" if 8 + length + max(ends, default=0) > size else None


def checkpoint_problem(folder: Path) -> str | None:
    """Why ``folder`` is not a complete checkpoint (reads headers only), or None when it is one."""
    folder = Path(folder)
    try:
        state = json.loads((folder / STATE_FILE).read_text())
        names = [str(n) for n in state["networks"]]
        int(state["step"])
    except FileNotFoundError:
        return f"{folder.name}/ has no {STATE_FILE}" if folder.is_dir() else f"{folder.name}/ is missing"
    except (OSError, ValueError, KeyError, TypeError):
        return f"{folder.name}/{STATE_FILE} is damaged"
    for name in [*(f"{n}.safetensors" for n in names), OPTIMIZER_FILE]:
        problem = _safetensors_problem(folder / name)
        if problem:
            return f"{folder.name}/{problem}"
    return None


def recover(folder: Path) -> bool:
    """After a crash inside :func:`save_checkpoint`: put the newest complete copy (the staged one, else the one set
    aside) back in place when ``folder`` is missing or torn. True when ``folder`` is a complete checkpoint."""
    folder = Path(folder)
    if checkpoint_problem(folder) is None:
        return True
    for suffix in (STAGING, ASIDE):
        candidate = folder.with_name(folder.name + suffix)
        if candidate.is_dir() and checkpoint_problem(candidate) is None:
            shutil.rmtree(folder, ignore_errors=True)
            candidate.rename(folder)
            return True
    return False


def discard(folder: Path) -> None:
    """Remove a checkpoint folder and its staged or set-aside copies."""
    folder = Path(folder)
    for suffix in ("", STAGING, ASIDE):
        shutil.rmtree(folder.with_name(folder.name + suffix), ignore_errors=True)


def read_state(folder: Path) -> dict[str, Any]:
    """The JSON part of a checkpoint; InputError when the folder is not a complete checkpoint."""
    path = Path(folder) / STATE_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(
            f"{path}: not a complete s4mi checkpoint ({exc.__class__.__name__}); resume the run (--resume) to "
            "go back to its last complete checkpoint, or pick a run folder written by s4mi"
        ) from exc


def _load_tensors(path: Path, device: str = "cpu") -> dict[str, torch.Tensor]:
    """A .safetensors file's tensors; InputError naming the file when it is missing, truncated or damaged."""
    try:
        return load_file(str(path), device=device)
    except (SafetensorError, OSError, ValueError) as exc:
        raise InputError(
            f"{path}: {DAMAGED} ({str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__}); resume the "
            "run (--resume) to go back to its last complete checkpoint, or train it again (--restart)"
        ) from exc


def load_networks(folder: Path, networks: dict[str, torch.nn.Module]) -> None:
    """Load each network's weights (strict: architecture must match the run's config)."""
    for name, module in networks.items():
        path = Path(folder) / f"{name}.safetensors"
        if not path.exists():
            raise InputError(f"{path}: missing network weights; the checkpoint is incomplete")
        device = next(module.parameters()).device
        module.load_state_dict(_load_tensors(path, str(device)))


def load_optimizers(folder: Path, optimizers: dict[str, torch.optim.Optimizer]) -> None:
    """Restore optimizer moments and step counts written by save_checkpoint."""
    state = read_state(folder)
    tensors = _load_tensors(Path(folder) / OPTIMIZER_FILE)
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
