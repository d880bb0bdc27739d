"""Tiled whole-slide prediction and stitching of napari_s4mi.core.inference, checked with identity models."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from skimage.draw import ellipse

from napari_s4mi.core.inference import SlidePrediction, predict_slide
from napari_s4mi.core.inputs import normalise_batch
from napari_s4mi.core.preprocess import IMAGENET_MEAN, IMAGENET_STD, TilingSpec, network_tile, tile_grid

DSB = Path(__file__).resolve().parents[1].parent / "shared/data/dsb2018"
_MEAN = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
_STD = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


class ArraySlide:
    """In-memory stand-in with the reading interface of napari_s4mi.core.io.Slide."""

    def __init__(self, rgb: np.ndarray):
        self.rgb = rgb
        self.shape = rgb.shape[:2]
        self.reads = 0

    def read(self) -> np.ndarray:
        return self.rgb.copy()

    def read_region(self, y: int, x: int, h: int, w: int) -> np.ndarray:
        self.reads += 1
        out = np.zeros((h, w, 3), np.uint8)
        height, width = self.shape
        y1, x1 = min(y + h, height), min(x + w, width)
        out[: y1 - y, : x1 - x] = self.rgb[y:y1, x:x1]
        return out


def _channel0(batch: torch.Tensor) -> torch.Tensor:
    """Un-normalised channel 0 in [0, 1] of a network-input batch (no red normalisation)."""
    return (batch * _STD + _MEAN)[:, 0].clamp(0, 1)


def soft_identity(batch: torch.Tensor) -> torch.Tensor:
    """Foreground probability = channel 0: the identity for slides whose channel 0 is 255 * mask."""
    fg = _channel0(batch)
    return torch.stack([1 - fg, fg], dim=1)


def hard_identity(batch: torch.Tensor) -> torch.Tensor:
    """One-hot probabilities of channel 0 > 0.5."""
    fg = (_channel0(batch) > 0.5).float()
    return torch.stack([1 - fg, fg], dim=1)


def _ellipses(h: int, w: int, rng: np.random.Generator, n: int = 6) -> np.ndarray:
    mask = np.zeros((h, w), np.uint8)
    while not mask.any():
        for _ in range(n):
            r, c = rng.uniform(0.05, 0.15, size=2) * min(h, w)
            rr, cc = ellipse(rng.uniform(0, h), rng.uniform(0, w), r, c, shape=(h, w), rotation=rng.uniform(0, 3))
            mask[rr, cc] = 1
    return mask


def _segments(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Foreground runs of 100-400 px across all rows: blobs of a 7 px tall slide."""
    row = np.zeros(w, np.uint8)
    x = int(rng.integers(0, 100))
    while x < w:
        length = int(rng.integers(100, 400))
        row[x : x + length] = 1
        x += length + int(rng.integers(100, 400))
    return np.repeat(row[None], h, axis=0)


def _mask_for(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    if shape == (1, 1):
        return np.ones((1, 1), np.uint8)
    return _segments(*shape, rng) if min(shape) < 32 else _ellipses(*shape, rng)


def _encode(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """RGB slide whose channel 0 is 255 * mask; the other channels are noise."""
    rgb = rng.integers(0, 256, (*mask.shape, 3), dtype=np.uint8)
    rgb[..., 0] = (mask > 0) * 255
    return rgb


def _iou(labels: np.ndarray, mask: np.ndarray) -> float:
    a, b = labels == 1, mask > 0
    return float((a & b).sum() / max(1, (a | b).sum()))


# --------------------------------------------------------------------------------------------- identity model
@pytest.mark.parametrize("shape", [(1, 1), (7, 3000), (1040, 1388), (1408, 1876)])
def test_identity_model_recovers_mask(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(shape))
    mask = _mask_for(shape, rng)
    slide = ArraySlide(_encode(mask, rng))
    result = predict_slide(slide, soft_identity, TilingSpec(), num_classes=2)
    assert isinstance(result, SlidePrediction)
    assert result.labels.shape == shape and result.labels.dtype == np.uint8
    assert result.n_tiles == len(tile_grid(*shape, TilingSpec()))
    assert result.disagreement is None and result.out_dir is None
    assert _iou(result.labels, mask) >= 0.98


@pytest.mark.parametrize("shape", [(1, 1), (1040, 1388), (1408, 1876), (900, 700)])
def test_one_hot_identity_model_recovers_mask(shape: tuple[int, int]) -> None:
    """Hard 0/1 probabilities too (their blurred edge at a slide's padded border costs thin slides more)."""
    rng = np.random.default_rng(7)
    mask = _mask_for(shape, rng)
    result = predict_slide(ArraySlide(_encode(mask, rng)), hard_identity, TilingSpec(), num_classes=2)
    assert _iou(result.labels, mask) >= 0.98


def test_three_classes_use_argmax() -> None:
    rng = np.random.default_rng(8)
    classes = _ellipses(1100, 1000, rng) + _ellipses(1100, 1000, rng)  # 0, 1, 2 where they overlap
    rgb = _encode(classes, rng)
    rgb[..., 0] = classes * 127

    def model(batch: torch.Tensor) -> torch.Tensor:
        level = torch.round(_channel0(batch) * 2).long()
        return torch.nn.functional.one_hot(level, 3).permute(0, 3, 1, 2).float()

    labels = predict_slide(ArraySlide(rgb), model, TilingSpec(), num_classes=3).labels
    assert set(np.unique(labels)) <= {0, 1, 2}
    assert (labels == classes).mean() >= 0.98
    for k in (1, 2):
        a, b = labels == k, classes == k
        assert (a & b).sum() / (a | b).sum() >= 0.9


def test_real_io_slide(tmp_path: Path) -> None:
    from napari_s4mi.core.io import open_slide

    rng = np.random.default_rng(9)
    mask = _ellipses(1040, 1388, rng)
    tifffile.imwrite(tmp_path / "slide.tif", _encode(mask, rng), photometric="rgb")
    result = predict_slide(open_slide(tmp_path / "slide.tif"), soft_identity, TilingSpec(), num_classes=2)
    assert result.n_tiles == 9
    assert _iou(result.labels, mask) >= 0.98


@pytest.mark.skipif(not DSB.is_dir(), reason="DSB 2018 data not present")
def test_real_dsb_image(tmp_path: Path) -> None:
    """The one 1040 x 1388 DSB image: its nucleus mask in channel 0, its own pixels in channels 1 and 2."""
    from napari_s4mi.core.io import open_slide, read_mask

    with open(DSB / "image_info.csv", newline="") as fh:
        ids = [r["image_id"] for r in csv.DictReader(fh) if (r["height"], r["width"]) == ("1040", "1388")]
    assert ids, "no 1040 x 1388 image in image_info.csv"
    image = open_slide(DSB / "images" / f"{ids[0]}.png").read()
    mask = read_mask(DSB / "masks_binary" / f"{ids[0]}.png") > 0
    rgb = image.copy()
    rgb[..., 0] = mask * 255
    tifffile.imwrite(tmp_path / "dsb.tif", rgb, photometric="rgb")
    result = predict_slide(open_slide(tmp_path / "dsb.tif"), soft_identity, TilingSpec(), num_classes=2)
    assert result.labels.shape == (1040, 1388) and result.n_tiles == 9
    assert _iou(result.labels, mask) >= 0.98


# --------------------------------------------------------------------------------------------- outputs
def _disagreeing(batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Soft identity plus a disagreement map: un-normalised channel 1, in [0, 1]."""
    return soft_identity(batch), (batch * _STD + _MEAN)[:, 1].clamp(0, 1)


def test_large_slide_goes_to_memmapped_tiffs(tmp_path: Path) -> None:
    rng = np.random.default_rng(10)
    mask = _ellipses(1000, 1500, rng)
    slide = ArraySlide(_encode(mask, rng))
    in_ram = predict_slide(slide, _disagreeing, TilingSpec(), 2, with_disagreement=True)
    on_disk = predict_slide(
        slide,
        _disagreeing,
        TilingSpec(),
        2,
        out_dir=tmp_path / "pred",
        large_pixels=1000,
        with_disagreement=True,
    )
    assert on_disk.out_dir == tmp_path / "pred"
    assert isinstance(on_disk.labels, np.memmap) and isinstance(on_disk.disagreement, np.memmap)
    np.testing.assert_array_equal(on_disk.labels, in_ram.labels)
    np.testing.assert_allclose(on_disk.disagreement, in_ram.disagreement, atol=1e-3)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "pred" / "labels.tif"), in_ram.labels)
    assert tifffile.imread(tmp_path / "pred" / "disagreement.tif").shape == (1000, 1500)
    assert not isinstance(in_ram.labels, np.memmap) and in_ram.out_dir is None


def test_large_slide_without_out_dir_uses_a_temporary_folder() -> None:
    slide = ArraySlide(_encode(np.zeros((40, 50), np.uint8), np.random.default_rng(11)))
    result = predict_slide(slide, soft_identity, TilingSpec(), 2, large_pixels=10)
    assert result.out_dir is not None and (result.out_dir / "labels.tif").is_file()
    assert not result.labels.any()
    folder = result.out_dir
    del result
    shutil.rmtree(folder)


@pytest.mark.parametrize("shape", [(300, 200), (1408, 1876)])
def test_disagreement_map(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(12)
    slide = ArraySlide(_encode(_mask_for(shape, rng), rng))
    result = predict_slide(slide, _disagreeing, TilingSpec(), 2, with_disagreement=True)
    dis = result.disagreement
    assert dis is not None and dis.shape == shape and dis.dtype == np.float32
    assert dis.min() >= 0.0 and dis.max() <= 1.0
    assert abs(float(dis.mean()) - float(slide.rgb[..., 1].mean()) / 255) < 0.02


# ------------------------------------------------------------------------------------------ calls and errors
def test_model_gets_batches_of_normalised_inputs() -> None:
    rng = np.random.default_rng(13)
    slide = ArraySlide(rng.integers(0, 256, (1408, 1876, 3), dtype=np.uint8))
    seen: list[torch.Tensor] = []

    def model(batch: torch.Tensor) -> torch.Tensor:
        seen.append(batch)
        return soft_identity(batch)

    progress: list[tuple[int, int]] = []
    predict_slide(
        slide,
        model,
        TilingSpec(),
        2,
        red_norm=True,
        batch_size=5,
        on_batch=lambda d, t: progress.append((d, t)),
    )
    assert [b.shape[0] for b in seen] == [5, 5, 2]
    assert all(b.dtype == torch.float32 and b.shape[1:] == (3, 224, 224) for b in seen)
    expected = normalise_batch(network_tile(slide.read_region(480, 960, 480, 480), 224)[None], red_norm=True)[0]
    np.testing.assert_allclose(seen[1][1].numpy(), expected.numpy(), atol=1e-5)  # tile 6 = row 1, column 2
    assert progress == [(5, 12), (10, 12), (12, 12)]
    assert slide.reads == 12 + 1


def test_cancelling_from_progress_callback() -> None:
    slide = ArraySlide(np.zeros((1408, 1876, 3), np.uint8))

    def cancel(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        predict_slide(slide, soft_identity, TilingSpec(), 2, batch_size=4, on_batch=cancel)


def test_bad_model_outputs_are_reported() -> None:
    slide = ArraySlide(np.zeros((50, 60, 3), np.uint8))
    with pytest.raises(ValueError, match="expected"):
        predict_slide(slide, soft_identity, TilingSpec(), num_classes=3)
    with pytest.raises(ValueError, match="disagreement"):
        predict_slide(slide, soft_identity, TilingSpec(), 2, with_disagreement=True)
    with pytest.raises(ValueError, match="num_classes"):
        predict_slide(slide, soft_identity, TilingSpec(), num_classes=300)


def test_low_precision_probabilities_are_accepted() -> None:
    rng = np.random.default_rng(14)
    mask = _ellipses(500, 600, rng)
    result = predict_slide(ArraySlide(_encode(mask, rng)), lambda b: soft_identity(b).bfloat16(), TilingSpec(), 2)
    assert _iou(result.labels, mask) >= 0.98
