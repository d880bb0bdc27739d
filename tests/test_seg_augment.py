"""Scale and colour augmentation of segmentation tiles: masks follow the image's geometry, colours move but the
mask does not, and seeded batches without them are exactly what they were."""

from __future__ import annotations

import numpy as np
import pytest

from napari_s4mi.core.data import TileSet, TwoStreamSampler
from napari_s4mi.core.registry import make_config
from napari_s4mi.core.seg_augment import colour_jitter, random_zoom


def _disc_tile(size: int = 64, radius: int = 12) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[:size, :size]
    mask = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < radius**2).astype(np.uint8)
    image = np.full((size, size, 3), 200, np.uint8)
    image[mask == 1] = (90, 40, 30)
    return image, mask


@pytest.mark.parametrize("factor", [0.5, 2.0])
def test_zoom_scales_the_lesion_and_its_mask_together(factor: float) -> None:
    image, mask = _disc_tile()
    out, out_mask = random_zoom(image, mask, np.random.default_rng(0), (factor, factor))
    assert out.shape == image.shape and out.dtype == np.uint8 and out_mask.shape == mask.shape
    if factor > 1:  # the crop may cut the disc: its area grows, up to factor² times
        assert mask.sum() < out_mask.sum() <= mask.sum() * factor**2 * 1.1
    else:  # shrunk and mirror-padded: each copy of the disc holds factor² of its area
        assert out_mask.sum() > 0
    dark = out.mean(axis=2) < 120  # the lesion's pixels are where the mask says
    assert (dark == (out_mask == 1)).mean() > 0.97


def test_zoom_of_one_and_no_jitter_change_nothing() -> None:
    image, mask = _disc_tile()
    rng = np.random.default_rng(0)
    out, out_mask = random_zoom(image, mask, rng, (1.0, 1.0))
    assert out is image and out_mask is mask
    assert colour_jitter(image, rng, 0.0) is image


def test_colour_jitter_moves_colours_within_range() -> None:
    image, _ = _disc_tile()
    outs = [colour_jitter(image, np.random.default_rng(seed), 0.4) for seed in range(8)]
    assert all(out.dtype == np.uint8 and out.shape == image.shape for out in outs)
    means = [float(out.mean()) for out in outs]
    assert max(means) - min(means) > 10  # different draws, different colours


def test_seeded_batches_are_unchanged_without_the_new_augmentations() -> None:
    """The sampler draws nothing extra when zoom and jitter are off, so runs keep their exact batches."""
    image, mask = _disc_tile()
    images = np.stack([image, image[::-1]])
    masks = np.stack([mask, mask[::-1]])
    tiles = TileSet(images=images, masks=masks, slide_ids=["a", "b"])
    plain = TwoStreamSampler(tiles, None, 3, True, 20.0).batch(5, 2, 2)
    off = TwoStreamSampler(tiles, None, 3, True, 20.0, zoom=(1.0, 1.0), jitter=0.0).batch(5, 2, 2)
    on = TwoStreamSampler(tiles, None, 3, True, 20.0, zoom=(0.7, 1.5), jitter=0.3).batch(5, 2, 2)
    assert all(np.array_equal(a, b) for a, b in zip(plain, off, strict=True))
    assert not np.array_equal(plain[0], on[0])


def test_config_checks_the_ranges() -> None:
    from napari_s4mi.core.errors import S4MIError

    config = make_config("segmentation", "supervised", "cpu-small", zoom_min=0.7, zoom_max=1.5, colour_jitter=0.3)
    assert (config.zoom_min, config.zoom_max, config.colour_jitter) == (0.7, 1.5, 0.3)
    with pytest.raises(S4MIError, match="zoom"):
        make_config("segmentation", "supervised", "cpu-small", zoom_min=1.5, zoom_max=0.7)
    with pytest.raises(S4MIError, match="colour jitter"):
        make_config("segmentation", "supervised", "cpu-small", colour_jitter=1.5)
