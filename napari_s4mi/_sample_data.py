"""napari sample data: one bundled dermoscopy slide with its lesion mask. No torch on this path."""

from __future__ import annotations

from .demo import sample_dir

SAMPLE_STEM = "ISIC_0000112"


def sample_lesion() -> list[tuple]:
    """The slide as an RGB image layer and its mask as a Labels layer."""
    from .core.io import open_slide, read_mask

    with open_slide(sample_dir() / "images" / f"{SAMPLE_STEM}.jpg") as slide:
        image = slide.read()
    mask = (read_mask(sample_dir() / "masks" / f"{SAMPLE_STEM}_segmentation.png") > 0).astype("uint8")
    return [
        (image, {"name": SAMPLE_STEM, "rgb": True}, "image"),
        (mask, {"name": f"{SAMPLE_STEM} mask"}, "labels"),
    ]
