"""Segmentation networks, the model factory and offline-safe weight loading (random init, no downloads)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

from napari_s4mi.core.errors import InputError
from napari_s4mi.core.models import ModelSpec, WeightsReport, build_model, count_parameters
from napari_s4mi.core.models.factory import spec_from_dict, spec_to_dict
from napari_s4mi.core.models.swin_unet import SwinUNet, auto_window_size, build_swin_unet
from napari_s4mi.core.models.unet import build_unet
from napari_s4mi.core.models.weights import load_matching, load_state_file, resolve_timm_checkpoint

SMALL_UNET = ModelSpec("unet", encoder="resnet18", weights="none")
SMALL_SWIN = ModelSpec("swin_unet", embed_dim=24, num_heads=(1, 2, 4, 8), weights="none")
CPU_SMALL = (
    ModelSpec("unet", encoder="resnet18", weights="none"),
    ModelSpec("swin_unet", embed_dim=48, num_heads=(2, 4, 8, 16), weights="none"),
)
PAPER = (
    ModelSpec("unet", encoder="resnet34", weights="none"),
    ModelSpec("swin_unet", embed_dim=96, depths=(2, 2, 2, 2), num_heads=(3, 6, 12, 24), weights="none"),
)


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may reach a model hub."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture()
def empty_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty Hugging Face cache, set in the environment before any builder runs."""
    cache = tmp_path / "hf"
    monkeypatch.setenv("HF_HOME", str(cache))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache / "hub"))
    return cache / "hub"


@pytest.fixture(scope="module")
def swin_tiny_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised timm swin_tiny checkpoint saved as safetensors."""
    import timm
    from safetensors.torch import save_file

    model = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False)
    path = tmp_path_factory.mktemp("swin") / "swin_tiny.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def _resnet18_state() -> dict[str, torch.Tensor]:
    import timm

    return {k: v.contiguous() for k, v in timm.create_model("resnet18", pretrained=False).state_dict().items()}


@pytest.mark.parametrize("size", [128, 224])
@pytest.mark.parametrize("spec", [SMALL_UNET, SMALL_SWIN], ids=["unet", "swin_unet"])
def test_output_shape(spec: ModelSpec, size: int) -> None:
    model, report = build_model(spec, num_classes=3, img_size=size)
    assert report.source == "random"
    with torch.no_grad():
        out = model.eval()(torch.randn(2, 3, size, size))
    assert out.shape == (2, 3, size, size)


@pytest.mark.parametrize("spec", [SMALL_UNET, SMALL_SWIN], ids=["unet", "swin_unet"])
def test_backward_reaches_every_parameter(spec: ModelSpec) -> None:
    model, _ = build_model(spec, num_classes=2, img_size=128)
    model.train()(torch.randn(2, 3, 128, 128)).logsumexp(1).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing


@pytest.mark.parametrize(("pair", "size"), [(CPU_SMALL, 128), (PAPER, 224)], ids=["cpu-small", "paper"])
def test_presets_train(pair: tuple[ModelSpec, ModelSpec], size: int) -> None:
    for spec in pair:
        model, _ = build_model(spec, num_classes=2, img_size=size)
        out = model.train()(torch.randn(1, 3, size, size))
        torch.nn.functional.cross_entropy(out, torch.randint(0, 2, (1, size, size))).backward()
        assert out.shape == (1, 2, size, size)
        assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("spec", [SMALL_UNET, SMALL_SWIN], ids=["unet", "swin_unet"])
def test_bf16_autocast_and_channels_last(spec: ModelSpec) -> None:
    model, _ = build_model(spec, num_classes=2, img_size=64)
    model = model.train().to(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
        loss = torch.nn.functional.cross_entropy(out.float(), torch.randint(0, 2, (2, 64, 64)))
    loss.backward()
    assert out.shape == (2, 2, 64, 64) and out.dtype == torch.bfloat16
    assert torch.isfinite(loss)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_swin_unet_size_is_close_to_the_reference() -> None:
    model = SwinUNet(img_size=224, num_classes=9)
    assert 26_000_000 < count_parameters(model) < 29_000_000  # Cao et al.: 27.2 M


@pytest.mark.parametrize(("size", "window"), [(128, 4), (160, 5), (192, 6), (224, 7), (256, 8), (448, 7)])
def test_auto_window_size(size: int, window: int) -> None:
    assert auto_window_size(size) == window
    assert SwinUNet(img_size=size, embed_dim=12, num_heads=(1, 1, 1, 1)).window_size == window


def test_swin_unet_rejects_sizes_not_multiple_of_32() -> None:
    with pytest.raises(InputError):
        SwinUNet(img_size=100)


@pytest.mark.parametrize("spec", [SMALL_UNET, SMALL_SWIN], ids=["unet", "swin_unet"])
def test_imagenet_with_empty_cache_falls_back_quickly(spec: ModelSpec, empty_cache: Path) -> None:
    start = time.monotonic()
    _, report = build_model(ModelSpec(spec.arch, spec.encoder, 96, spec.depths, (3, 6, 12, 24), "imagenet"), 2, 128)
    assert time.monotonic() - start < 5
    assert report.source == "random"
    assert "offline" in report.message and "cache" in report.message
    assert str(empty_cache) in report.message


def test_resolve_timm_checkpoint_reads_the_local_cache(empty_cache: Path) -> None:
    from safetensors.torch import save_file

    assert resolve_timm_checkpoint("resnet18.tv_in1k") is None
    snapshot = empty_cache / "models--timm--resnet18.tv_in1k" / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    state = _resnet18_state()
    save_file(state, str(snapshot / "model.safetensors"))
    (empty_cache / "models--timm--resnet18.tv_in1k" / "refs").mkdir()
    (empty_cache / "models--timm--resnet18.tv_in1k" / "refs" / "main").write_text("0123abcd")
    assert resolve_timm_checkpoint("resnet18.tv_in1k") == snapshot / "model.safetensors"
    assert resolve_timm_checkpoint("not_a_model_at_all") is None

    model, report = build_unet("resnet18", weights="imagenet")
    assert report.source == "imagenet-cache"
    assert report.loaded == len(model.encoder.state_dict())
    assert torch.equal(model.encoder.layer2[0].conv1.weight, state["layer2.0.conv1.weight"])


def test_resnet_safetensors_loads_into_unet_encoder(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    state = _resnet18_state()
    path = tmp_path / "resnet18.safetensors"
    save_file(state, str(path))
    model, report = build_model(ModelSpec("unet", encoder="resnet18", weights=str(path)), 2, 128)
    assert isinstance(report, WeightsReport)
    assert report.source == "file"
    assert report.loaded == len(model.encoder.state_dict())
    assert torch.equal(model.encoder.layer1[0].conv1.weight, state["layer1.0.conv1.weight"])
    assert torch.equal(model.encoder.bn1.running_var, state["bn1.running_var"])


def test_unet_checkpoint_loads_into_whole_model(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    source, _ = build_unet("resnet18", num_classes=2, weights="none")
    path = tmp_path / "unet.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    model, report = build_unet("resnet18", num_classes=2, weights=str(path))
    assert report.source == "file" and report.loaded == report.total
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model.eval()(x), source.eval()(x))


@pytest.mark.parametrize("name", ["weights.pth", "weights.pt", "weights.ckpt"])
def test_pickled_checkpoints_are_refused(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"not read")
    with pytest.raises(InputError, match="safetensors"):
        build_model(ModelSpec("unet", encoder="resnet18", weights=str(path)), 2, 128)
    with pytest.raises(InputError, match="safetensors"):
        load_state_file(path)


def test_missing_or_unrelated_weight_files_are_input_errors(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    with pytest.raises(InputError, match="not found"):
        load_state_file(tmp_path / "absent.safetensors")
    path = tmp_path / "unrelated.safetensors"
    save_file({"foo.weight": torch.zeros(3)}, str(path))
    with pytest.raises(InputError, match="no tensor"):
        build_unet("resnet18", weights=str(path))


def test_load_matching_skips_extra_missing_and_misshaped_keys() -> None:
    layer = torch.nn.Linear(4, 2)
    state = {"net.weight": torch.ones(2, 4), "net.bias": torch.ones(5), "other": torch.ones(1)}
    loaded, total = load_matching(layer, state, prefix_map={"net.": ""})
    assert (loaded, total) == (1, 2)
    assert torch.equal(layer.weight, torch.ones(2, 4))


def test_swin_safetensors_loads_into_swin_unet(swin_tiny_file: Path) -> None:
    state = load_state_file(swin_tiny_file)
    model, report = build_swin_unet(img_size=224, weights=str(swin_tiny_file))
    assert report.source == "file" and report.loaded > 0
    key = "layers.2.blocks.1.attn.qkv.weight"
    assert torch.equal(model.state_dict()[key], state[key])
    assert torch.equal(model.state_dict()["patch_embed.proj.weight"], state["patch_embed.proj.weight"])
    mirrored = model.state_dict()["decoder_stages.1.blocks.0.mlp.fc1.weight"]
    assert torch.equal(mirrored, state["layers.1.blocks.0.mlp.fc1.weight"])


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_swin_weights_adapt_to_another_window(swin_tiny_file: Path) -> None:
    state = load_state_file(swin_tiny_file)
    small, report = build_swin_unet(img_size=128, weights=str(swin_tiny_file))
    assert small.window_size == 4 and report.loaded > 0
    table = state["layers.0.blocks.0.attn.relative_position_bias_table"].reshape(13, 13, -1)
    cropped = small.state_dict()["layers.0.blocks.0.attn.relative_position_bias_table"].reshape(7, 7, -1)
    assert torch.equal(cropped, table[3:10, 3:10])
    large, report = build_swin_unet(img_size=256, weights=str(swin_tiny_file))
    assert large.window_size == 8 and report.loaded > 0
    assert torch.equal(
        large.state_dict()["layers.1.blocks.0.attn.qkv.weight"], state["layers.1.blocks.0.attn.qkv.weight"]
    )


def test_swin_weights_of_another_width_are_refused(swin_tiny_file: Path) -> None:
    with pytest.raises(InputError, match="no tensor"):
        build_swin_unet(img_size=128, embed_dim=48, num_heads=(2, 4, 8, 16), weights=str(swin_tiny_file))


def test_model_spec_round_trip() -> None:
    spec = ModelSpec("swin_unet", embed_dim=48, depths=(2, 2, 6, 2), num_heads=(2, 4, 8, 16), weights="none")
    data = json.loads(json.dumps(spec_to_dict(spec)))
    back = spec_from_dict(data)
    assert back == spec
    assert isinstance(back.depths, tuple) and isinstance(back.num_heads, tuple)
    assert spec_from_dict(spec_to_dict(SMALL_UNET)) == SMALL_UNET


def test_model_spec_rejects_unknown_arch() -> None:
    with pytest.raises(InputError):
        ModelSpec("resnet")
