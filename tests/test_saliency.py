"""Saliency maps of napari_s4mi.core.saliency: a trained-vs-randomised sanity test, model hygiene, slide stitching.

The sanity test (Adebayo et al., "Sanity checks for saliency maps"): on 64 px noise images where a bright
20 x 20 patch (~10% of the area) at a random place makes the class, a small trained CNN must put at least half
of its gradient saliency in the patch, and the same network with re-initialised weights far less.
"""

from __future__ import annotations

import copy
import time

import numpy as np
import pytest
import torch
from torch import nn

from napari_s4mi.core.preprocess import TilingSpec
from napari_s4mi.core.saliency import grad_cam, gradient_saliency, normalise_maps, slide_saliency

SIZE, PATCH = 64, 20


class ArraySlide:
    """In-memory slide with the reading interface of napari_s4mi.core.io.Slide (blank beyond the edges)."""

    def __init__(self, rgb: np.ndarray):
        self.rgb = rgb
        self.shape = rgb.shape[:2]

    def read_region(self, y: int, x: int, h: int, w: int) -> np.ndarray:
        out = np.zeros((h, w, 3), np.uint8)
        y1, x1 = min(y + h, self.shape[0]), min(x + w, self.shape[1])
        out[: y1 - y, : x1 - x] = self.rgb[y:y1, x:x1]
        return out


def _patch_task(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gaussian-noise images (N, 3, 64, 64); class 1 gets +2 on a 20 x 20 square. Returns x, y, patch masks."""
    x = torch.randn(n, 3, SIZE, SIZE, generator=g)
    y = torch.randint(0, 2, (n,), generator=g)
    mask = torch.zeros(n, SIZE, SIZE, dtype=torch.bool)
    for i in range(n):
        r, c = torch.randint(0, SIZE - PATCH + 1, (2,), generator=g).tolist()
        mask[i, r : r + PATCH, c : c + PATCH] = True
        if y[i]:
            x[i, :, r : r + PATCH, c : c + PATCH] += 2.0
    return x, y, mask


def _small_cnn(width: int = 8, classes: int = 2) -> nn.Sequential:
    """Three conv + ReLU stages (receptive field 18 px), global max pooling, linear head."""

    def stage(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU())

    return nn.Sequential(
        stage(3, width),
        nn.MaxPool2d(2),
        stage(width, 2 * width),
        nn.MaxPool2d(2),
        stage(2 * width, 4 * width),  # index 4: the Grad-CAM layer
        nn.AdaptiveMaxPool2d(1),
        nn.Flatten(),
        nn.Linear(4 * width, classes),
    )


def _mass_in_patch(maps: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean over images of the fraction of saliency inside the patch (an all-zero map counts 0)."""
    return float(((maps * mask).sum((1, 2)) / maps.sum((1, 2)).clamp_min(1e-12)).mean())


@pytest.fixture(scope="module")
def trained():
    """The small CNN trained 100 steps (batch 32) on the patch task, and 200 held-out images."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # far faster than 2 threads on a shared 2-core machine
    try:
        torch.manual_seed(0)
        model = _small_cnn()
        head = model[-1]
        nn.init.zeros_(head.weight)
        nn.init.zeros_(head.bias)
        # The head's bias learns 100x faster: otherwise near-constant background-texture channels learn the class
        # offset (acting as a bias), and their gradient puts saliency mass in the background.
        rest = [p for p in model.parameters() if p is not head.bias]
        opt = torch.optim.Adam([{"params": rest}, {"params": [head.bias], "lr": 0.3}], lr=3e-3)
        g = torch.Generator().manual_seed(0)
        start = time.perf_counter()
        for _ in range(100):
            x, y, _ = _patch_task(32, g)
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        seconds = time.perf_counter() - start
        x, y, mask = _patch_task(200, torch.Generator().manual_seed(1))
        model.eval()
        with torch.no_grad():
            accuracy = float((model(x).argmax(1) == y).float().mean())
        yield dict(model=model, x=x[y == 1], mask=mask[y == 1], accuracy=accuracy, seconds=seconds)
    finally:
        torch.set_num_threads(threads)


def _randomised(model: nn.Module) -> nn.Module:
    """A copy with every layer re-initialised (the model randomisation test)."""
    twin = copy.deepcopy(model)
    torch.manual_seed(1)
    for module in twin.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    return twin


def test_gradient_saliency_falls_in_the_deciding_patch_and_not_after_randomisation(trained):
    model, x, mask = trained["model"], trained["x"], trained["mask"]
    assert trained["accuracy"] >= 0.95
    mass = _mass_in_patch(gradient_saliency(model, x, 1), mask)
    random_mass = _mass_in_patch(gradient_saliency(_randomised(model), x, 1), mask)
    print(
        f"accuracy {trained['accuracy']:.3f} in {trained['seconds']:.1f} s; gradient saliency in patch: "
        f"trained {mass:.3f}, randomised {random_mass:.3f} (patch area {float(mask.float().mean()):.3f})"
    )
    assert mass >= 0.5
    assert random_mass < 0.5 * mass


def test_grad_cam_falls_in_the_patch_more_than_after_randomisation(trained):
    model, x, mask = trained["model"], trained["x"], trained["mask"]
    mass = _mass_in_patch(grad_cam(model, x, 1, model[4]), mask)
    twin = _randomised(model)
    random_mass = _mass_in_patch(grad_cam(twin, x, 1, twin[4]), mask)
    print(f"Grad-CAM in patch: trained {mass:.3f}, randomised {random_mass:.3f}")
    assert mass > random_mass
    assert mass >= 0.5


@pytest.mark.parametrize("method", ["gradient", "grad_cam"])
def test_maps_are_float32_in_unit_range_with_the_input_shape(method):
    torch.manual_seed(0)
    model = _small_cnn(classes=3)
    x = torch.randn(4, 3, 32, 32)
    if method == "gradient":
        maps = gradient_saliency(model, x, [0, 1, 2, 1])
    else:
        maps = grad_cam(model, x, 2, model[4])
    assert maps.shape == (4, 32, 32) and maps.dtype == torch.float32
    assert float(maps.min()) >= 0.0 and float(maps.max()) <= 1.0
    for m in maps:  # per image: spans [0, 1] unless constant (then all zeros)
        assert float(m.max()) in (0.0, pytest.approx(1.0))


def test_grad_cam_on_a_timm_resnet_layer4():
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model("resnet18", pretrained=False, num_classes=3)
    maps = grad_cam(model, torch.randn(2, 3, 64, 64), 1, model.layer4)
    assert maps.shape == (2, 64, 64) and maps.dtype == torch.float32
    assert not model.layer4._forward_hooks and not model.layer4._backward_hooks


def test_model_is_left_as_found():
    torch.manual_seed(0)
    model = _small_cnn()
    model.train()
    model[0].eval()  # mixed modes must survive
    model[0][0].weight.requires_grad_(False)  # as must a frozen parameter
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):  # a caller in inference mode
        gradient_saliency(model, x, 1)
        grad_cam(model, x, 1, model[4])
    assert all(p.grad is None for p in model.parameters())
    assert model.training and not model[0].training and model[2].training
    assert not model[0][0].weight.requires_grad
    assert all(p.requires_grad for name, p in model.named_parameters() if name != "0.0.weight")
    assert x.grad is None and not x.requires_grad
    assert not any(m._forward_hooks or m._backward_hooks for m in model.modules())


def test_hooks_are_removed_on_error():
    model = _small_cnn()
    unused = nn.Conv2d(3, 3, 1)
    with pytest.raises(ValueError, match="ran 0 times"):
        grad_cam(model, torch.randn(1, 3, 32, 32), 0, unused)
    assert not unused._forward_hooks

    class Broken(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("boom")

    broken = nn.Sequential(_small_cnn()[:5], Broken())
    with pytest.raises(RuntimeError, match="boom"):
        grad_cam(broken, torch.randn(1, 3, 32, 32), 0, broken[0][4])
    assert not broken[0][4]._forward_hooks
    assert all(p.requires_grad for p in broken.parameters()) and broken.training
    with pytest.raises(ValueError, match="class_index"):
        gradient_saliency(model, torch.randn(2, 3, 32, 32), 2)


def test_normalise_maps_per_image():
    maps = torch.stack([torch.arange(16.0).view(4, 4), torch.full((4, 4), 3.0)])
    out = normalise_maps(maps)
    assert float(out[0].min()) == 0.0 and float(out[0].max()) == 1.0
    assert torch.equal(out[1], torch.zeros(4, 4))


# ------------------------------------------------------------------------------------------ slide stitching
def _ramp_slide(h: int, w: int) -> ArraySlide:
    """Channel 0 rises from 50 to 250 left to right; the others are constant."""
    rgb = np.full((h, w, 3), 128, np.uint8)
    rgb[..., 0] = np.linspace(50, 250, w).round().astype(np.uint8)[None, :]
    return ArraySlide(rgb)


def _channel0_maps(calls: list[int]):
    """maps_for_batch stub: channel 0 of the network input back on [0, 1] (a known 'saliency')."""

    def maps(batch: torch.Tensor) -> torch.Tensor:
        calls.append(len(batch))
        assert batch.dtype == torch.float32 and batch.device.type == "cpu"
        return batch[:, 0] * 0.229 + 0.485

    return maps


def test_slide_saliency_stitches_tiles_at_full_resolution():
    slide = _ramp_slide(1408, 1876)
    calls: list[int] = []
    out = slide_saliency(slide, _channel0_maps(calls), TilingSpec(), batch_size=8)
    assert out.shape == (1408, 1876) and out.dtype == np.float32
    assert out.min() == 0.0 and out.max() == pytest.approx(1.0)
    assert calls == [8, 4]  # 3 x 4 tiles of 480 px
    # Away from the bottom/right edges (blurred with the blank padding of the last tiles) the map is the ramp,
    # up to the one affine min-max of the slide, seamless across tiles.
    inner, ramp = out[:-8, :-8].astype(np.float64), slide.rgb[0, :-8, 0].astype(np.float64)
    slope, offset = np.polyfit(ramp, inner[0], 1)
    assert slope > 0 and np.abs(inner - (slope * ramp + offset)).max() < 0.02


def test_slide_saliency_normalises_once_per_slide_not_per_tile():
    rgb = np.zeros((1000, 1000, 3), np.uint8)
    rgb[:480, :480] = 200  # the first tile is bright, the rest dark
    calls: list[int] = []

    def tile_means(batch: torch.Tensor) -> torch.Tensor:
        calls.append(len(batch))
        return batch.mean(dim=(1, 2, 3), keepdim=True)[:, 0].expand(-1, *batch.shape[-2:])  # constant per tile

    out = slide_saliency(ArraySlide(rgb), tile_means, TilingSpec(), batch_size=3)
    assert calls == [3, 3, 3]
    assert np.all(out[:480, :480] == 1.0) and np.all(out[480:, 480:] == 0.0)


def test_slide_saliency_of_a_small_slide_resized_whole():
    slide = _ramp_slide(300, 500)
    calls: list[int] = []
    out = slide_saliency(slide, _channel0_maps(calls), TilingSpec())
    assert calls == [1] and out.shape == (300, 500) and out.dtype == np.float32
    assert np.abs(out - (slide.rgb[..., 0] - 50.0) / 200).max() < 0.03


def test_slide_saliency_with_gradient_maps_of_a_model():
    torch.manual_seed(0)
    model = _small_cnn()
    slide = _ramp_slide(120, 90)
    spec = TilingSpec(input_size=64)
    out = slide_saliency(slide, lambda b: gradient_saliency(model, b, 1, normalise=False), spec, red_norm=True)
    assert out.shape == (120, 90) and out.dtype == np.float32
    assert out.min() == 0.0 and out.max() == pytest.approx(1.0)
