"""Tiling, resizing, normalisation and augmentation of napari_s4mi.core.preprocess."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.draw import ellipse

from napari_s4mi.core.preprocess import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Tile,
    TilingSpec,
    augment,
    network_tile,
    resize_image,
    resize_mask,
    tile_grid,
)


def to_network_input(region: np.ndarray, size: int, red_norm: bool) -> np.ndarray:
    """The one path every network input takes: uint8 tile, then the torch normalisation."""
    from napari_s4mi.core.inputs import normalise_batch

    return normalise_batch(network_tile(region, size)[None], red_norm)[0].numpy()


def _ellipses(h: int, w: int, rng: np.random.Generator, n: int = 5) -> np.ndarray:
    mask = np.zeros((h, w), np.uint8)
    for _ in range(n):
        r, c = rng.uniform(0.08, 0.2, size=2) * min(h, w)
        rr, cc = ellipse(rng.uniform(0, h), rng.uniform(0, w), r, c, shape=(h, w), rotation=rng.uniform(0, np.pi))
        mask[rr, cc] = 1
    return mask


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


# --------------------------------------------------------------------------------------------- TilingSpec
@pytest.mark.parametrize("size", [100, 0, -32, 31, 224.0, True])
def test_input_size_must_be_positive_multiple_of_32(size: object) -> None:
    with pytest.raises(ValueError, match="multiple of 32"):
        TilingSpec(input_size=size)  # type: ignore[arg-type]


def test_valid_specs() -> None:
    assert TilingSpec().input_size == 224
    assert TilingSpec(input_size=256, tile_size=512, tile_threshold=1024).tile_size == 512
    with pytest.raises(ValueError, match="tile_size"):
        TilingSpec(tile_size=0)


# --------------------------------------------------------------------------------------------- tile_grid
def test_paper_slide_gives_twelve_tiles() -> None:
    tiles = tile_grid(1408, 1876, TilingSpec())
    assert len(tiles) == 12
    assert {(t.h, t.w) for t in tiles} == {(480, 480)}
    assert sorted({t.y for t in tiles}) == [0, 480, 960]
    assert sorted({t.x for t in tiles}) == [0, 480, 960, 1440]
    # the last row/column run past the slide (blank padding), they are not shifted back
    assert max(t.y + t.h for t in tiles) == 1440 and max(t.x + t.w for t in tiles) == 1920


@pytest.mark.parametrize("shape", [(900, 900), (960, 960), (1, 1), (960, 3)])
def test_small_slide_is_one_whole_tile(shape: tuple[int, int]) -> None:
    assert tile_grid(*shape, TilingSpec()) == [Tile(0, 0, *shape)]


def test_one_long_side_triggers_tiling() -> None:
    tiles = tile_grid(961, 10, TilingSpec())
    assert tiles == [Tile(0, 0, 480, 480), Tile(480, 0, 480, 480), Tile(960, 0, 480, 480)]


@pytest.mark.parametrize("shape", [(1408, 1876), (961, 10), (900, 900), (1, 1), (2000, 481), (7, 3000)])
def test_tiles_cover_every_pixel_once(shape: tuple[int, int]) -> None:
    h, w = shape
    count = np.zeros(shape, np.int32)
    for tile in tile_grid(h, w, TilingSpec()):
        vh, vw = tile.valid_shape(h, w)
        assert vh > 0 and vw > 0
        count[tile.y : tile.y + vh, tile.x : tile.x + vw] += 1
    assert (count == 1).all()


def test_tile_grid_rejects_empty_slide() -> None:
    with pytest.raises(ValueError):
        tile_grid(0, 10, TilingSpec())


# --------------------------------------------------------------------------------------------- resizing
@pytest.mark.parametrize("size", [224, (500, 1000), 7])
def test_resize_mask_keeps_label_values(size: int | tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    mask = rng.choice(np.array([0, 3, 7], np.uint16), size=(480, 330))
    out = resize_mask(mask, size)
    expected = (size, size) if isinstance(size, int) else size
    assert out.shape == expected and out.dtype == np.uint16
    assert set(np.unique(out)) <= {0, 3, 7}


def test_resize_mask_identity_and_exact_upscale() -> None:
    mask = np.arange(12, dtype=np.int32).reshape(3, 4)
    np.testing.assert_array_equal(resize_mask(mask, (3, 4)), mask)
    np.testing.assert_array_equal(resize_mask(mask, (6, 8)), np.kron(mask, np.ones((2, 2), np.int32)))


@pytest.mark.parametrize("shape", [(480, 480), (1040, 1388), (7, 3000), (1, 1), (100, 50)])
def test_resize_image_matches_torch_antialiased_bilinear(shape: tuple[int, int]) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    out = resize_image(img, 224)
    assert out.shape == (224, 224, 3) and out.dtype == np.float32 and out.flags.c_contiguous
    ref = torch.nn.functional.interpolate(
        torch.from_numpy(img.astype(np.float32)).permute(2, 0, 1)[None], size=(224, 224), mode="bilinear",
        align_corners=False, antialias=True,
    )[0].permute(1, 2, 0).numpy()  # fmt: skip
    np.testing.assert_allclose(out, ref, atol=0.01)


def test_resize_image_keeps_constants_and_copies() -> None:
    img = np.full((37, 1000, 3), 200, np.uint8)
    np.testing.assert_allclose(resize_image(img, (224, 224)), 200.0, atol=1e-3)
    same = np.random.default_rng(2).random((224, 224, 3)).astype(np.float32)
    out = resize_image(same, 224)
    np.testing.assert_array_equal(out, same)
    assert not np.shares_memory(out, same)
    assert resize_image(np.zeros((5, 9), np.uint8), 32).shape == (32, 32)


# --------------------------------------------------------------------------------------------- normalisation
def test_red_normalise_on_a_known_pixel() -> None:
    from napari_s4mi.core.inputs import normalise_batch

    img = np.array([[[153, 204, 0], [0, 0, 0], [51, 0, 68]]], np.uint8)
    out = normalise_batch(img[None], red_norm=True)[0].numpy() * IMAGENET_STD[:, None, None]
    out += IMAGENET_MEAN[:, None, None]
    r = img[..., 0] / 255.0
    assert out[0, 0, 0] == pytest.approx(r[0, 0] / np.sqrt(1.0 + 1e-6), rel=1e-5)
    assert out[0, 0, 1] == pytest.approx(0.0, abs=1e-6)  # black stays black, no NaN
    assert out[0, 0, 2] == pytest.approx(r[0, 2] / np.sqrt(0.2**2 + (68 / 255) ** 2 + 1e-6), rel=1e-5)
    np.testing.assert_allclose(out[1:].transpose(1, 2, 0), img[..., 1:] / 255.0, atol=1e-6)


@pytest.mark.parametrize("red_norm", [False, True])
def test_to_network_input_order(red_norm: bool) -> None:
    region = np.zeros((300, 200, 3), np.uint8)
    region[...] = (153, 204, 51)
    out = to_network_input(region, 64, red_norm=red_norm)
    assert out.shape == (3, 64, 64) and out.dtype == np.float32
    rgb = np.array([153, 204, 51], np.float64) / 255.0
    if red_norm:
        rgb[0] /= np.sqrt((rgb**2).sum() + 1e-6)
    expected = (rgb - IMAGENET_MEAN) / IMAGENET_STD
    np.testing.assert_allclose(out[:, 10, 20], expected, atol=1e-4)


def test_training_and_prediction_give_a_tile_the_same_network_input(sample_project) -> None:
    """One preprocessing path: a slide's tile as the training data loads and normalises it, and as the
    whole-slide prediction prepares it, are the same network input."""
    import torch

    from napari_s4mi.core.data import load_tiles
    from napari_s4mi.core.inference import network_inputs
    from napari_s4mi.core.inputs import normalise_batch

    slide_id = sample_project.ids[0]
    spec = TilingSpec(input_size=96)
    trained = normalise_batch(load_tiles(sample_project, [slide_id], spec, with_masks=False).images, True)
    with sample_project.open_slide(slide_id) as slide:
        predicted = network_inputs(slide, tile_grid(*slide.shape[:2], spec), spec.input_size, True)
    assert trained.shape == predicted.shape == (1, 3, 96, 96)
    assert float(torch.max(torch.abs(trained - predicted))) < 1e-3


def test_to_network_input_accepts_gray() -> None:
    out = to_network_input(np.full((10, 10), 255, np.uint8), 32, red_norm=False)
    np.testing.assert_allclose(out[:, 0, 0], (1 - IMAGENET_MEAN) / IMAGENET_STD, atol=1e-4)


# --------------------------------------------------------------------------------------------- augmentation
def _encoded_pair(rng: np.random.Generator, size: int = 224) -> tuple[np.ndarray, np.ndarray]:
    mask = _ellipses(size, size, rng)
    image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    image[..., 0] = mask * 255
    return image, mask


@pytest.mark.parametrize(("max_angle", "min_iou"), [(20.0, 0.97), (0.0, 0.99)])
def test_augment_moves_image_and_mask_together(max_angle: float, min_iou: float) -> None:
    image, mask = _encoded_pair(np.random.default_rng(3))
    changed = 0
    for seed in range(40):
        out_img, out_mask = augment(image, mask, np.random.default_rng(seed), max_angle=max_angle, p_angle=1.0)
        assert out_img.shape == image.shape and out_img.dtype == image.dtype
        assert out_mask.shape == mask.shape and out_mask.dtype == mask.dtype
        assert set(np.unique(out_mask)) <= {0, 1}
        assert _iou(out_img[..., 0] > 127, out_mask == 1) >= min_iou
        changed += not np.array_equal(out_mask, mask)
    assert changed >= 20


def test_augment_small_angle_is_not_a_right_angle() -> None:
    image, mask = _encoded_pair(np.random.default_rng(4))
    _, out = augment(image, mask, np.random.default_rng(5), max_angle=20.0, p_angle=1.0)
    dihedral = [np.rot90(m, k) for m in (mask, mask[::-1]) for k in range(4)]
    assert not any(np.array_equal(out, d) for d in dihedral)
    # the mirrored border keeps the foreground fraction close
    assert abs(out.mean() - mask.mean()) < 0.1


def test_augment_float_image_and_non_square() -> None:
    rng = np.random.default_rng(6)
    image = rng.random((64, 96, 3)).astype(np.float32)
    mask = (image[..., 0] > 0.5).astype(np.int64)
    for seed in range(10):
        out_img, out_mask = augment(image, mask, np.random.default_rng(seed), max_angle=0.0)
        assert out_img.shape == (64, 96, 3) and out_img.dtype == np.float32
        np.testing.assert_array_equal(out_img[..., 0] > 0.5, out_mask == 1)
    with pytest.raises(ValueError):
        augment(image, mask[:10], rng)
