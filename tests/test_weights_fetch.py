"""ImageNet weights for real users: fetched once into the HF cache, offline and unreachable hubs fall back to random
initialisation within seconds with one line, `s4mi weights fetch`, timm backbones loaded at another img_size.

No test touches the network: the hub is either offline, a closed local port, or a stubbed download.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from napari_s4mi.cli import main
from napari_s4mi.core.models import fetch
from napari_s4mi.core.models.fetch import fetch_weights, preset_weight_names
from napari_s4mi.core.models.timm_weights import load_imagenet_into
from napari_s4mi.core.models.unet import build_unet
from napari_s4mi.core.models.weights import hf_hub_id

CLOSED_PORT = "http://127.0.0.1:9"
PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


@pytest.fixture(autouse=True)
def empty_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty HF cache and the hub offline; tests that go 'online' point it at a closed port."""
    cache = tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HOME", str(cache.parent))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", CLOSED_PORT)
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    return cache


@pytest.fixture()
def unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Online as far as the environment says, but the hub is a closed local port."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


def put_in_cache(cache: Path, timm_name: str, state: dict[str, torch.Tensor]) -> Path:
    """Write ``state`` as the timm checkpoint of ``timm_name`` in the HF cache layout."""
    from safetensors.torch import save_file

    repo = cache / ("models--" + hf_hub_id(timm_name).replace("/", "--"))
    snapshot = repo / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    save_file({k: v.contiguous() for k, v in state.items()}, str(snapshot / "model.safetensors"))
    return snapshot / "model.safetensors"


def timm_model(name: str, **kwargs: object) -> torch.nn.Module:
    import timm

    return timm.create_model(name, pretrained=False, **kwargs)


def assert_fallback_line(message: str, name: str, reason: str) -> None:
    assert "\n" not in message
    assert f"no ImageNet weights for {name}" in message and reason in message
    assert "random initialisation" in message and f"s4mi weights fetch {name}" in message


def test_offline_falls_back_to_random_with_one_line(empty_cache: Path) -> None:
    _, report = build_unet("resnet18", weights="imagenet")
    classifier = timm_model("resnet18", num_classes=0)
    start = time.monotonic()  # the weight lookup alone; building models is slow on a busy CPU
    backbone = load_imagenet_into(classifier, "resnet18")
    assert time.monotonic() - start < 5
    assert report.source == backbone.source == "random"
    assert_fallback_line(report.message, "resnet18.tv_in1k", "HF_HUB_OFFLINE")
    assert_fallback_line(backbone.message, "resnet18", "HF_HUB_OFFLINE")
    assert str(empty_cache) in report.message
    assert not empty_cache.exists() or not any(empty_cache.rglob("*.safetensors"))


def test_unreachable_hub_falls_back_within_seconds(unreachable: None) -> None:
    _, report = build_unet("resnet18", weights="imagenet")
    vit = timm_model("vit_tiny_patch16_224", num_classes=0, img_size=64)
    start = time.monotonic()  # the weight lookup alone, hub probe included
    backbone = load_imagenet_into(vit, "vit_tiny_patch16_224")
    assert time.monotonic() - start < 10
    assert report.source == backbone.source == "random"
    assert_fallback_line(report.message, "resnet18.tv_in1k", f"{CLOSED_PORT} unreachable")
    assert_fallback_line(backbone.message, "vit_tiny_patch16_224", f"{CLOSED_PORT} unreachable")


def test_probe_goes_through_the_proxy_in_use(monkeypatch: pytest.MonkeyPatch) -> None:
    assert fetch._connect_target("https://huggingface.co") == ("huggingface.co", 443)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "")
    assert fetch._connect_target("https://huggingface.co") == ("proxy.example", 3128)


def test_cached_checkpoint_loads_into_a_vit_of_another_size(empty_cache: Path) -> None:
    from timm.layers import resample_abs_pos_embed

    source = timm_model("vit_tiny_patch16_224")  # 224 px, 1000-class head: what the hub holds
    state = source.state_dict()
    put_in_cache(empty_cache, "vit_tiny_patch16_224", state)
    model = timm_model("vit_tiny_patch16_224", num_classes=0, img_size=128)
    report = load_imagenet_into(model, "vit_tiny_patch16_224")
    assert report.source == "imagenet-cache", report.message
    assert report.loaded == report.total == len(model.state_dict())
    own = model.state_dict()
    assert not any(k.startswith("head.") for k in own)
    assert torch.equal(own["blocks.3.attn.qkv.weight"], state["blocks.3.attn.qkv.weight"])
    assert torch.equal(own["patch_embed.proj.weight"], state["patch_embed.proj.weight"])
    expected = resample_abs_pos_embed(state["pos_embed"], new_size=(8, 8), num_prefix_tokens=1)
    assert own["pos_embed"].shape == (1, 65, 192)
    assert torch.allclose(own["pos_embed"], expected)


def test_cached_checkpoint_skips_the_classifier_head(empty_cache: Path) -> None:
    state = timm_model("resnet18").state_dict()
    put_in_cache(empty_cache, "resnet18", state)
    model = timm_model("resnet18", num_classes=5)
    head = model.fc.weight.detach().clone()
    report = load_imagenet_into(model, "resnet18")
    assert report.source == "imagenet-cache"
    assert report.loaded == report.total - 2  # everything but fc.weight and fc.bias
    assert torch.equal(model.fc.weight, head)
    assert torch.equal(model.layer4[1].conv2.weight, state["layer4.1.conv2.weight"])
    four = timm_model("resnet18", num_classes=0, in_chans=4)
    assert load_imagenet_into(four, "resnet18").loaded == len(four.state_dict())


def test_missing_checkpoint_is_downloaded_once_into_the_cache(
    empty_cache: Path, unreachable: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = timm_model("resnet18").state_dict()
    calls: list[str] = []

    def fake_download(hub_id: str, cache: Path, endpoint: str, progress: bool) -> str:
        calls.append(hub_id)
        assert cache == empty_cache and endpoint == CLOSED_PORT
        return str(put_in_cache(cache, "resnet18.tv_in1k", state))

    monkeypatch.setattr(fetch, "probe", lambda endpoint: None)
    monkeypatch.setattr(fetch, "_download", fake_download)
    model, report = build_unet("resnet18", weights="imagenet")
    assert report.source == "imagenet-download" and "downloaded" in report.message
    assert report.loaded == len(model.encoder.state_dict())
    assert torch.equal(model.encoder.layer1[0].conv1.weight, state["layer1.0.conv1.weight"])
    assert calls == ["timm/resnet18.tv_in1k"]
    (again,) = fetch_weights(["resnet18.tv_in1k"])
    assert again.status == "cached" and calls == ["timm/resnet18.tv_in1k"]
    _, report = build_unet("resnet18", weights="imagenet")
    assert report.source == "imagenet-cache"


def test_cli_fetch_offline_exits_2_with_one_line_per_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["weights", "fetch", "resnet18", "not_a_timm_model"]) == 2
    out, err = capsys.readouterr()
    lines = (out + err).strip().splitlines()
    assert len(lines) == 2 and "Traceback" not in out + err
    assert lines[0].startswith("s4mi: resnet18: failed (offline") and "HF_HUB_OFFLINE" in lines[0]
    assert lines[1].startswith("s4mi: not_a_timm_model: failed")


def test_cli_fetch_without_names_covers_the_presets(empty_cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    names = preset_weight_names()
    assert {"resnet18.tv_in1k", "resnet34.tv_in1k", "resnet50.tv_in1k", "swin_tiny_patch4_window7_224"} <= set(names)
    assert {"resnet18", "resnet50", "vit_tiny_patch16_224", "vit_base_patch16_224"} <= set(names)
    assert all(hf_hub_id(name) for name in names)
    put_in_cache(empty_cache, "resnet18", timm_model("resnet18").state_dict())
    assert main(["weights", "fetch"]) == 2
    out, err = capsys.readouterr()
    assert out.strip().splitlines() == [f"s4mi: resnet18: cached ({next(empty_cache.rglob('model.safetensors'))})"]
    assert len(err.strip().splitlines()) == len(names) - 1
    cached = put_in_cache(empty_cache, "resnet34.tv_in1k", timm_model("resnet34").state_dict())
    assert main(["weights", "fetch", "resnet34.tv_in1k"]) == 0
    assert capsys.readouterr().out.strip() == f"s4mi: resnet34.tv_in1k: cached ({cached})"
