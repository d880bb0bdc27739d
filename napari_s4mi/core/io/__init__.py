"""Slide and mask I/O: TIFF (multi-page, pyramidal, 16-bit, float) via tifffile, PNG/JPEG/BMP via Pillow.

Every slide reads as RGB uint8 (H, W, 3) whatever its source:

- grayscale is replicated to 3 channels, RGBA drops alpha, 2 channels get a zero third channel, more than 4
  channels keep the first 3;
- 8-bit data is kept as is; 16-bit, 32-bit and float data are scaled to uint8 between the 1st and 99.8th
  percentiles, computed once per slide (per channel, or jointly for RGB colour data) so that all regions of a
  slide share one scaling;
- a TIFF's channel axis comes from its tags (tifffile's series axes: ``S`` samples, ``C`` channels) and shape;
  pages count as channels when the series has exactly one axis besides Y and X and it holds 3 or 4 planes;
  otherwise the first plane of every extra axis is used. ``channel_axis`` overrides this for TIFFs;
- a tiled, multi-strip or pyramidal TIFF above ``LAZY_PIXELS`` is read lazily through zarr (level 0 of a
  pyramid): ``read_region`` decodes only the tiles it touches.

Masks are 2D integer label images, saved as zlib-compressed TIFF, uint8 when labels fit else uint16, written
atomically (see :mod:`napari_s4mi.core.atomic`).

Modules: ``files`` (suffixes, listing a slide folder), ``layout`` (TIFF axes), ``scaling`` (to uint8),
``sources`` (in-memory and zarr pixel sources), ``readers`` (format headers), ``slide`` (Slide, open_slide),
``masks`` (read/validate/write label masks).
"""

from .files import SLIDE_SUFFIXES, TIFF_SUFFIXES, list_slides
from .layout import Layout, tiff_layout
from .masks import as_label_image, read_mask, write_mask
from .readers import LAZY_PIXELS
from .scaling import PERCENTILES, compute_scaling, needs_scaling
from .slide import Slide, open_slide

__all__ = [
    "LAZY_PIXELS",
    "PERCENTILES",
    "SLIDE_SUFFIXES",
    "TIFF_SUFFIXES",
    "Layout",
    "Slide",
    "as_label_image",
    "compute_scaling",
    "list_slides",
    "needs_scaling",
    "open_slide",
    "read_mask",
    "tiff_layout",
    "write_mask",
]
