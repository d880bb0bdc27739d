"""The CPU optimizer of channels_last networks: fused Adam over contiguous views, the same numbers as torch's Adam."""

from __future__ import annotations

import torch

from napari_s4mi.core.methods.segmentation import ChannelsLastFusedAdam


def _params(channels_last: bool):
    torch.manual_seed(0)
    conv = torch.randn(16, 8, 3, 3)
    if channels_last:
        conv = conv.contiguous(memory_format=torch.channels_last)
    return [torch.nn.Parameter(conv), torch.nn.Parameter(torch.randn(16)), torch.nn.Parameter(torch.randn(4, 8))]


def test_channels_last_fused_adam_is_bit_identical_to_torch_adam() -> None:
    ours, reference = _params(True), _params(False)
    opt = ChannelsLastFusedAdam(ours, lr=1e-2, weight_decay=1e-5, fused=True)
    ref = torch.optim.Adam(reference, lr=1e-2, weight_decay=1e-5, fused=True)
    for step in range(3):
        g = torch.Generator().manual_seed(step)
        for a, b in zip(ours, reference, strict=True):
            grad = torch.randn(a.shape, generator=g)
            a.grad, b.grad = grad.contiguous(memory_format=torch.preserve_format), grad.clone()
            if a.dim() == 4:
                a.grad = grad.contiguous(memory_format=torch.channels_last)
        opt.step()
        ref.step()
    for a, b in zip(ours, reference, strict=True):
        assert torch.equal(a, b)
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(opt.state[a][key], ref.state[b][key])
    assert ours[0].is_contiguous(memory_format=torch.channels_last)  # the layout is kept
    assert opt.state[ours[0]]["exp_avg"].is_contiguous(memory_format=torch.channels_last)


def test_segmentation_methods_use_it_where_their_cnn_is_channels_last() -> None:
    from conftest import tiny_config

    from napari_s4mi.core.methods import build_method

    run_info = {"classes": ["background", "foreground"]}
    cpu = torch.device("cpu")
    bf16 = build_method(tiny_config(), run_info, cpu, "bf16")  # channels_last U-Net (runs on any CPU)
    assert all(type(o) is ChannelsLastFusedAdam for o in bf16.optimizers.values())
    fp32 = build_method(tiny_config(), run_info, cpu, "fp32")  # default layout: torch's Adam as before
    assert all(type(o) is torch.optim.Adam for o in fp32.optimizers.values())
    unfused = build_method(tiny_config(fused_optimizer=False), run_info, cpu, "bf16")
    assert all(type(o) is torch.optim.Adam and not o.defaults["fused"] for o in unfused.optimizers.values())
