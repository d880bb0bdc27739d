"""The stress set's variants: same shapes (the large one at 3H x 4W), masks that follow the geometry, colours that
move; and prediction of a large slide tiled or resized whole."""

from __future__ import annotations

import numpy as np
import pytest

from napari_s4mi.core.io import open_slide, read_mask
from napari_s4mi.core.sample import sample_dir
from napari_s4mi.core.stress import LARGE, VARIANTS, ZOOM_IN, ZOOM_OUT, stress_pair


@pytest.fixture(scope="module")
def real_pair() -> tuple[np.ndarray, np.ndarray]:
    path = sorted((sample_dir() / "images").iterdir())[1]
    with open_slide(path) as slide:
        image = slide.read()
    return image, (read_mask(sample_dir() / "masks" / f"{path.stem}_segmentation.png") > 0).astype(np.uint8)


def test_every_variant_keeps_shape_and_dtype(real_pair) -> None:
    image, mask = real_pair
    for variant in VARIANTS:
        out, out_mask = stress_pair(image, mask, variant)
        factor = LARGE if variant == "large" else (1, 1)
        assert out_mask.shape == (mask.shape[0] * factor[0], mask.shape[1] * factor[1])
        assert out.shape == (*out_mask.shape, 3) and out.dtype == np.uint8 and set(np.unique(out_mask)) <= {0, 1}
        if variant == "large":  # the same scene: the lesion keeps its share of the frame
            assert out_mask.mean() == pytest.approx(mask.mean(), rel=0.03)


def test_zooms_scale_the_lesion_area(real_pair) -> None:
    image, mask = real_pair
    _, smaller = stress_pair(image, mask, "zoom-out")
    assert smaller.sum() == pytest.approx(mask.sum() * ZOOM_OUT**2, rel=0.05)
    _, larger = stress_pair(image, mask, "zoom-in")
    h, w = mask.shape
    ch, cw = round(h / ZOOM_IN), round(w / ZOOM_IN)
    centre = mask[(h - ch) // 2 : (h - ch) // 2 + ch, (w - cw) // 2 : (w - cw) // 2 + cw]
    assert larger.sum() == pytest.approx(centre.sum() * ZOOM_IN**2, rel=0.05)  # the central part, enlarged
    assert larger.mean() > mask.mean()  # the lesion fills more of the frame


def test_colour_variants_move_colours_not_masks(real_pair) -> None:
    image, mask = real_pair
    for variant in ("recolour", "dark"):
        out, out_mask = stress_pair(image, mask, variant)
        assert np.array_equal(out_mask, mask)
        assert np.abs(out.astype(float) - image).mean() > 5
    with pytest.raises(ValueError, match="unknown stress variant"):
        stress_pair(image, mask, "sideways")
