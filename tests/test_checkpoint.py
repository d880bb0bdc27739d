"""Checkpoints restore optimizers in the layout of their parameters (channels_last on CUDA and CPU bf16)."""

from __future__ import annotations

import torch

from napari_s4mi.core.checkpoint import load_optimizers, save_checkpoint


def _conv_and_adam() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Conv2d(8, 2, 1)).to(memory_format=torch.channels_last)
    return net, torch.optim.Adam(net.parameters(), lr=1e-3, fused=True)


def _step(net: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    optimizer.zero_grad(set_to_none=True)
    x = torch.randn(2, 3, 16, 16).to(memory_format=torch.channels_last)
    net(x).square().mean().backward()
    optimizer.step()


def test_restored_adam_moments_follow_channels_last_parameters(tmp_path):
    torch.manual_seed(0)
    net, optimizer = _conv_and_adam()
    _step(net, optimizer)
    save_checkpoint(tmp_path / "last", {"cnn": net}, {"cnn": optimizer}, {"step": 1})
    fresh_net, fresh_optimizer = _conv_and_adam()
    fresh_net.load_state_dict(net.state_dict())
    load_optimizers(tmp_path / "last", {"cnn": fresh_optimizer})
    weight = fresh_net[0].weight
    moments = fresh_optimizer.state[weight]
    assert moments["exp_avg"].stride() == weight.stride() == net[0].weight.stride()
    assert torch.equal(moments["exp_avg"], optimizer.state[net[0].weight]["exp_avg"])
    _step(fresh_net, fresh_optimizer)  # fused Adam refuses moments whose layout differs from the parameter's


def test_fp16_resume_goes_on_with_the_saved_loss_scale(sample_project):
    """The GradScaler's scale and growth tracker are checkpointed: a resumed fp16 run does not restart at 2^16."""
    import json

    from conftest import tiny_config

    from napari_s4mi.core.engine import train
    from napari_s4mi.core.events import CancelToken, Progress

    run_dir = sample_project.root / "runs" / "fp16"
    config = tiny_config(iterations=3, precision="fp16", val_every=100, checkpoint_every=100)
    cancel = CancelToken()
    for event in train(sample_project, config, run_dir, cancel=cancel):
        if isinstance(event, Progress):
            cancel.cancel()
    state_path = run_dir / "last" / "state.json"
    state = json.loads(state_path.read_text())
    assert state["step"] == 1 and state["scaler"]["scale"] > 0
    state["scaler"]["scale"] = 1024.0  # as if many overflow steps had brought it down
    state_path.write_text(json.dumps(state))
    list(train(sample_project, config, run_dir, resume=True))
    final = json.loads(state_path.read_text())
    assert final["step"] == 3
    assert final["scaler"]["scale"] <= 1024.0  # restarted scaling would be back at 65536
