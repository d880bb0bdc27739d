"""Slide and mask I/O: formats, bit depths, channel layouts, lazy tiled TIFFs, padding, bad inputs."""

from __future__ import annotations

import os
import tracemalloc
import warnings
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
import tifffile
from PIL import Image
from skimage import io as skio

from napari_s4mi.core import io
from napari_s4mi.core.atomic import atomic_write_bytes, atomic_write_text
from napari_s4mi.core.errors import InputError
from napari_s4mi.core.io import (
    LAZY_PIXELS,
    list_slides,
    open_slide,
    read_mask,
    write_mask,
)


def _rgb(h: int = 24, w: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _smooth_rgb(h: int = 32, w: int = 48) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([yy * 4, xx * 3, (yy + xx) * 2], -1).astype(np.uint8)


def _expected_scaling(values: np.ndarray, data: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(values.astype(np.float64), (1, 99.8))
    return np.clip(np.rint((data.astype(np.float64) - lo) * 255.0 / (hi - lo)), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------- 8-bit formats


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif", ".tiff"])
def test_lossless_rgb_roundtrip(tmp_path: Path, suffix: str) -> None:
    img = _rgb()
    path = tmp_path / f"slide{suffix}"
    skio.imsave(path, img, check_contrast=False)
    with open_slide(path) as slide:
        assert slide.shape == (24, 32)
        assert slide.dtype == np.uint8
        out = slide.read()
    assert out.dtype == np.uint8 and out.shape == (24, 32, 3)
    np.testing.assert_array_equal(out, img)


def test_jpeg_rgb(tmp_path: Path) -> None:
    img = _smooth_rgb()
    path = tmp_path / "slide.jpg"
    Image.fromarray(img).save(path, quality=100)
    out = open_slide(path).read()
    assert out.shape == (32, 48, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - img).mean() < 3


@pytest.mark.parametrize("suffix", [".png", ".tif", ".jpeg"])
def test_grayscale_replicated(tmp_path: Path, suffix: str) -> None:
    gray = _smooth_rgb()[..., 0]
    path = tmp_path / f"gray{suffix}"
    skio.imsave(path, gray, check_contrast=False)
    out = open_slide(path).read()
    assert out.shape == (32, 48, 3)
    np.testing.assert_array_equal(out[..., 0], out[..., 1])
    np.testing.assert_array_equal(out[..., 0], out[..., 2])
    if suffix != ".jpeg":
        np.testing.assert_array_equal(out[..., 0], gray)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_rgba_drops_alpha(tmp_path: Path, suffix: str) -> None:
    rgba = np.concatenate([_rgb(), np.full((24, 32, 1), 7, np.uint8)], axis=-1)
    path = tmp_path / f"rgba{suffix}"
    if suffix == ".tif":
        tifffile.imwrite(path, rgba, photometric="rgb")
    else:
        skio.imsave(path, rgba, check_contrast=False)
    np.testing.assert_array_equal(open_slide(path).read(), rgba[..., :3])


def test_palette_png_becomes_rgb(tmp_path: Path) -> None:
    index = (np.arange(64).reshape(8, 8) % 3).astype(np.uint8)
    img = Image.fromarray(index, mode="L").convert("P")
    img.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 255] + [0] * 759)
    path = tmp_path / "palette.png"
    img.save(path)
    out = open_slide(path).read()
    np.testing.assert_array_equal(out[index == 1], [[255, 0, 0]] * int((index == 1).sum()))
    np.testing.assert_array_equal(out[index == 2], [[0, 0, 255]] * int((index == 2).sum()))


def test_two_channels_get_a_zero_third(tmp_path: Path) -> None:
    data = np.stack([_rgb()[..., 0], _rgb(seed=1)[..., 0]])  # (2, H, W)
    path = tmp_path / "two.tif"
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "CYX"})
    out = open_slide(path).read()
    np.testing.assert_array_equal(out[..., 0], data[0])
    np.testing.assert_array_equal(out[..., 1], data[1])
    assert not out[..., 2].any()


# ------------------------------------------------------------------------------------ 16-bit and float


def test_16bit_gray_png_percentile_scaling(tmp_path: Path) -> None:
    data = np.random.default_rng(0).integers(0, 60000, (64, 80)).astype(np.uint16)
    path = tmp_path / "g16.png"
    skio.imsave(path, data, check_contrast=False)
    with open_slide(path) as slide:
        assert slide.dtype == np.uint16
        out = slide.read()
    assert out.dtype == np.uint8
    lo, hi = np.percentile(data, (1, 99.8))
    np.testing.assert_array_equal(out[..., 0], _expected_scaling(data, data))
    assert (out[data <= lo] == 0).all() and (out[data >= hi] == 255).all()


def test_16bit_rgb_png_keeps_16_bits(tmp_path: Path) -> None:
    data = np.random.default_rng(1).integers(0, 65535, (20, 30, 3)).astype(np.uint16)
    data[0, 0] = [1, 2, 3]  # distinct low values that an 8-bit reduction would merge
    path = tmp_path / "rgb16.png"
    imagecodecs.imwrite(path, data)
    with open_slide(path) as slide:
        assert slide.dtype == np.uint16
        out = slide.read()
    np.testing.assert_array_equal(out, _expected_scaling(data, data))  # RGB: one scaling for all channels


def test_16bit_tiff_regions_share_one_scaling(tmp_path: Path) -> None:
    yy, xx = np.mgrid[0:100, 0:120]
    data = (yy * 500 + xx * 20).astype(np.uint16)  # dark top-left, bright bottom-right
    path = tmp_path / "ramp16.tif"
    tifffile.imwrite(path, data)
    slide = open_slide(path)
    corner = slide.read_region(0, 0, 10, 10)  # read first: the scaling must still come from the whole slide
    whole = slide.read()
    np.testing.assert_array_equal(corner, whole[:10, :10])
    np.testing.assert_array_equal(whole[..., 0], _expected_scaling(data, data))
    assert whole.min() == 0 and whole.max() == 255


def test_16bit_fluorescence_channels_scaled_per_channel(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    data = np.stack([rng.integers(0, 1000, (40, 50)), rng.integers(0, 60000, (40, 50))]).astype(np.uint16)
    path = tmp_path / "cyx.tif"
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "CYX"})
    out = open_slide(path).read()
    np.testing.assert_array_equal(out[..., 0], _expected_scaling(data[0], data[0]))
    np.testing.assert_array_equal(out[..., 1], _expected_scaling(data[1], data[1]))


def test_float_tiff_scaled_and_nan_is_zero(tmp_path: Path) -> None:
    data = np.random.default_rng(3).normal(0.0, 1.0, (50, 60)).astype(np.float32)
    data[0, 0] = np.nan
    path = tmp_path / "float.tif"
    tifffile.imwrite(path, data)
    with open_slide(path) as slide:
        assert slide.dtype == np.float32
        out = slide.read()
    finite = data[np.isfinite(data)]
    expected = _expected_scaling(finite, np.nan_to_num(data))
    np.testing.assert_array_equal(out[1:, :, 0], expected[1:])
    assert tuple(out[0, 0]) == (0, 0, 0)


# ---------------------------------------------------------------------------------------- TIFF layouts


def test_channels_first_and_last_tiffs_agree(tmp_path: Path) -> None:
    img = _rgb(20, 28)
    planar = np.moveaxis(img, -1, 0)
    files = {
        "last_rgb.tif": dict(data=img, photometric="rgb"),
        "first_planar.tif": dict(data=planar, photometric="rgb", planarconfig="separate"),
        "first_pages.tif": dict(data=planar, photometric="minisblack"),
        "last_untagged.tif": dict(data=img, photometric="minisblack", metadata=None),
    }
    for name, kwargs in files.items():
        tifffile.imwrite(tmp_path / name, kwargs.pop("data"), **kwargs)
        with open_slide(tmp_path / name) as slide:
            assert slide.shape == (20, 28), name
            np.testing.assert_array_equal(slide.read(), img, err_msg=name)


def test_imagej_channels(tmp_path: Path) -> None:
    img = _rgb(20, 28)
    path = tmp_path / "ij.tif"
    tifffile.imwrite(path, np.moveaxis(img, -1, 0), imagej=True, metadata={"axes": "CYX"})
    np.testing.assert_array_equal(open_slide(path).read(), img)


def test_channel_axis_override(tmp_path: Path) -> None:
    img = _rgb(20, 28)
    last = tmp_path / "last.tif"
    tifffile.imwrite(last, img, photometric="minisblack")
    np.testing.assert_array_equal(open_slide(last, channel_axis=2).read(), img)
    np.testing.assert_array_equal(open_slide(last, channel_axis=-1).read(), img)
    first = tmp_path / "first.tif"
    tifffile.imwrite(first, np.moveaxis(img, -1, 0), photometric="minisblack")
    np.testing.assert_array_equal(open_slide(first, channel_axis=0).read(), img)
    # the override wins over the automatic choice: channels-last on a channels-first file
    assert open_slide(first, channel_axis=-1).shape == (3, 20)
    with pytest.raises(InputError, match="first.tif"):
        open_slide(first, channel_axis=5)


def test_override_ignored_for_png(tmp_path: Path) -> None:
    path = tmp_path / "rgb.png"
    skio.imsave(path, _rgb(), check_contrast=False)
    np.testing.assert_array_equal(open_slide(path, channel_axis=0).read(), _rgb())


def test_multipage_not_channels_reads_first_page(tmp_path: Path) -> None:
    pages = np.stack([np.full((16, 20), 10 * (k + 1), np.uint8) for k in range(5)])
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, pages, photometric="minisblack")
    out = open_slide(path).read()
    assert out.shape == (16, 20, 3) and (out == 10).all()


def test_hyperstack_reads_first_plane_of_extra_axes(tmp_path: Path) -> None:
    data = np.zeros((2, 3, 3, 16, 20), np.uint8)  # T Z C Y X
    data[0, 0] = np.moveaxis(_rgb(16, 20), -1, 0)
    data[1] = 200
    path = tmp_path / "tzcyx.tif"
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "TZCYX"})
    np.testing.assert_array_equal(open_slide(path).read(), _rgb(16, 20))


def test_tiff_layout_unit() -> None:
    assert io.tiff_layout("YXS", (5, 6, 3)).c == 2
    assert io.tiff_layout("SYX", (3, 5, 6)).c == 0
    assert io.tiff_layout("CYX", (2, 5, 6)).c == 0
    assert io.tiff_layout("QYX", (3, 50, 60)).c == 0
    assert io.tiff_layout("QYX", (50, 60, 3)) == io.Layout(3, 0, 1, 2)
    assert io.tiff_layout("QYX", (7, 50, 60)).c is None
    assert io.tiff_layout("YX", (5, 6), channel_axis=0).c is None


# ------------------------------------------------------------------------------------------- lazy TIFF


def _pattern(y0: int, y1: int, x0: int, x1: int, step: int = 1) -> np.ndarray:
    """Known pixels of the big test slide at rows y0:y1 and columns x0:x1 (every ``step``-th)."""
    yy, xx = np.ogrid[y0:y1:step, x0:x1:step]
    shape = (yy.shape[0], xx.shape[1])
    channels = [np.broadcast_to(yy % 251, shape), np.broadcast_to(xx % 253, shape), (yy + 2 * xx) % 255]
    return np.stack(channels, -1).astype(np.uint8)


def _write_tiled_pyramid(path: Path, size: int, tile: int = 256) -> None:
    """A tiled RGB pyramid written tile by tile, so the full image is never held in memory."""

    def tiles(step: int):
        n = -(-size // step)
        for ty in range(0, n, tile):
            for tx in range(0, n, tile):
                yield _pattern(ty * step, (ty + tile) * step, tx * step, (tx + tile) * step, step)

    with tifffile.TiffWriter(path) as tw:
        tw.write(tiles(1), shape=(size, size, 3), dtype=np.uint8, tile=(tile, tile), photometric="rgb", subifds=1)
        small = -(-size // 4)
        tw.write(
            tiles(4),
            shape=(small, small, 3),
            dtype=np.uint8,
            tile=(tile, tile),
            photometric="rgb",
            subfiletype=1,
        )


@pytest.fixture(scope="module")
def big_pyramid(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("lazy") / "big.tif"
    _write_tiled_pyramid(path, 5000)
    return path


def test_big_tiled_pyramid_is_read_lazily(big_pyramid: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert 5000 * 5000 > LAZY_PIXELS

    def forbidden(*args, **kwargs):
        raise AssertionError("the whole page was decoded")

    monkeypatch.setattr(tifffile.TiffPage, "asarray", forbidden)
    monkeypatch.setattr(tifffile.TiffPageSeries, "asarray", forbidden)
    with tifffile.TiffFile(big_pyramid) as tif:
        assert len(tif.series[0].levels) == 2
    slide = open_slide(big_pyramid)
    assert slide.shape == (5000, 5000)
    import zarr  # noqa: F401  (imported before measuring so the import itself is not counted)

    tracemalloc.start()
    try:
        corner = slide.read_region(10, 20, 64, 48)
        edge = slide.read_region(4980, 4990, 40, 30)  # leaves the slide at the bottom-right
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert slide.is_lazy
    assert peak < 8 * 2**20, f"peak {peak / 2**20:.1f} MiB for a 72 MiB image"
    np.testing.assert_array_equal(corner, _pattern(10, 74, 20, 68))
    np.testing.assert_array_equal(edge[:20, :10], _pattern(4980, 5000, 4990, 5000))
    assert not edge[20:].any() and not edge[:, 10:].any()
    slide.close()


def test_big_16bit_tiled_tiff_scaling_is_shared(tmp_path: Path) -> None:
    size, tile = 4200, 512
    assert size * size > LAZY_PIXELS

    def tiles():
        for ty in range(0, size, tile):
            for tx in range(0, size, tile):
                yy, xx = np.mgrid[ty : ty + tile, tx : tx + tile]
                yield ((yy * 7 + xx * 5) % 60000).astype(np.uint16)

    path = tmp_path / "big16.tif"
    tifffile.imwrite(path, tiles(), shape=(size, size), dtype=np.uint16, tile=(tile, tile))
    slide = open_slide(path)
    a = slide.read_region(1000, 1000, 100, 100)
    b = slide.read_region(1050, 1050, 100, 100)
    assert slide.is_lazy and a.dtype == np.uint8
    np.testing.assert_array_equal(a[50:, 50:], b[:50, :50])
    assert a.max() > a.min()


def test_big_16bit_pyramid_scaled_from_smallest_level(tmp_path: Path) -> None:
    size, tile = 4200, 512
    small = size // 4

    def ramp(step: int):
        n = size // step
        for ty in range(0, n, tile):
            for tx in range(0, n, tile):
                yy, xx = np.ogrid[ty * step : (ty + tile) * step : step, tx * step : (tx + tile) * step : step]
                yield (yy * 9 + xx * 3).astype(np.uint16)

    path = tmp_path / "pyr16.tif"
    with tifffile.TiffWriter(path) as tw:
        tw.write(ramp(1), shape=(size, size), dtype=np.uint16, tile=(tile, tile), subifds=1)
        tw.write(ramp(4), shape=(small, small), dtype=np.uint16, tile=(tile, tile), subfiletype=1)
    yy, xx = np.ogrid[0:size:4, 0:size:4]
    level = (yy * 9 + xx * 3).astype(np.uint16)
    slide = open_slide(path)
    out = slide.read_region(2000, 3000, 16, 16)
    assert slide.is_lazy
    yy, xx = np.ogrid[2000:2016, 3000:3016]
    np.testing.assert_array_equal(out[..., 0], _expected_scaling(level, (yy * 9 + xx * 3).astype(np.uint16)))


def test_small_tiled_tiff_loaded_whole(tmp_path: Path) -> None:
    path = tmp_path / "small_tiled.tif"
    tifffile.imwrite(path, _rgb(300, 400), tile=(128, 128), photometric="rgb")
    slide = open_slide(path)
    np.testing.assert_array_equal(slide.read(), _rgb(300, 400))
    assert not slide.is_lazy


# --------------------------------------------------------------------------------------------- regions


def test_region_padding(tmp_path: Path) -> None:
    img = _rgb(24, 32)
    path = tmp_path / "pad.png"
    skio.imsave(path, img, check_contrast=False)
    slide = open_slide(path)
    out = slide.read_region(-5, -7, 10, 12)
    assert out.shape == (10, 12, 3)
    assert not out[:5].any() and not out[:, :7].any()
    np.testing.assert_array_equal(out[5:, 7:], img[:5, :5])
    out = slide.read_region(20, 30, 10, 10)
    np.testing.assert_array_equal(out[:4, :2], img[20:, 30:])
    assert not out[4:].any() and not out[:, 2:].any()
    assert not slide.read_region(100, 100, 4, 4).any()
    assert slide.read_region(0, 0, 0, 5).shape == (0, 5, 3)
    with pytest.raises(ValueError):
        slide.read_region(0, 0, -1, 5)


# ------------------------------------------------------------------------------------------ bad inputs


def test_text_file_named_png(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("not an image at all\n")
    with pytest.raises(InputError, match="notes.png") as err:
        open_slide(path)
    assert "\n" not in str(err.value)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="ghost.tif"):
        open_slide(tmp_path / "ghost.tif")
    empty = tmp_path / "empty.jpg"
    empty.touch()
    with pytest.raises(InputError, match="empty.jpg"):
        open_slide(empty)
    with pytest.raises(InputError, match="not a file"):
        open_slide(tmp_path)


def test_truncated_png_fails_on_read(tmp_path: Path) -> None:
    path = tmp_path / "cut.png"
    skio.imsave(path, _rgb(64, 64), check_contrast=False)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(InputError, match="cut.png"):
        open_slide(path).read()


def test_corrupt_tiff(tmp_path: Path) -> None:
    path = tmp_path / "bad.tif"
    path.write_bytes(b"II*\x00" + b"\xff" * 50)
    with pytest.raises(InputError, match="bad.tif"):
        open_slide(path).read()


def test_zero_size_tiff(tmp_path: Path) -> None:
    path = tmp_path / "zero.tif"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tifffile warns that a zero-size TIFF is nonconformant: that is the point
        tifffile.imwrite(path, np.zeros((0, 5), np.uint8))
    with pytest.raises(InputError, match="zero.tif"):
        open_slide(path).read()


# --------------------------------------------------------------------------------------------- listing


def test_list_slides(tmp_path: Path) -> None:
    for name in ["b.png", "a.TIF", "c.jpeg", ".hidden.png", "notes.txt", "d.bmp"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "e.png").write_bytes(b"x")
    (tmp_path / "dir.png").mkdir()
    assert [p.name for p in list_slides(tmp_path)] == ["a.TIF", "b.png", "c.jpeg", "d.bmp"]
    with pytest.raises(InputError, match="nowhere"):
        list_slides(tmp_path / "nowhere")


# ----------------------------------------------------------------------------------------------- masks


def test_mask_roundtrip_uint8_and_uint16(tmp_path: Path) -> None:
    small = (np.arange(30 * 40).reshape(30, 40) % 3).astype(np.int64)
    write_mask(tmp_path / "m8.tif", small)
    out = read_mask(tmp_path / "m8.tif")
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, small)
    big = small.copy()
    big[0, 0] = 300
    write_mask(tmp_path / "m16.tif", big)
    out = read_mask(tmp_path / "m16.tif")
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, big)
    with tifffile.TiffFile(tmp_path / "m8.tif") as tif:
        assert tif.pages[0].compression == tifffile.COMPRESSION.ADOBE_DEFLATE
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m16.tif", "m8.tif"]  # no temporary files left


def test_read_mask_colour_and_palette(tmp_path: Path) -> None:
    labels = (np.arange(20 * 30).reshape(20, 30) % 2).astype(np.uint8) * 255
    skio.imsave(tmp_path / "rgb.png", np.repeat(labels[..., None], 3, -1), check_contrast=False)
    np.testing.assert_array_equal(read_mask(tmp_path / "rgb.png"), labels)
    colour = np.zeros((20, 30, 3), np.uint8)
    colour[..., 0] = labels
    skio.imsave(tmp_path / "colour.png", colour, check_contrast=False)
    with pytest.raises(InputError, match="colour.png"):
        read_mask(tmp_path / "colour.png")
    index = (np.arange(64).reshape(8, 8) % 3).astype(np.uint8)
    img = Image.fromarray(index, mode="L").convert("P")
    img.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)
    img.save(tmp_path / "palette.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "palette.png"), index)


def test_bad_masks(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="neg.tif"):
        write_mask(tmp_path / "neg.tif", np.array([[-1, 0]]))
    with pytest.raises(InputError, match="float.tif"):
        write_mask(tmp_path / "float.tif", np.array([[0.5, 1.0]]))
    with pytest.raises(InputError, match="vol.tif"):
        write_mask(tmp_path / "vol.tif", np.zeros((2, 3, 4, 5), np.uint8))
    (tmp_path / "text.png").write_text("hello")
    with pytest.raises(InputError, match="text.png"):
        read_mask(tmp_path / "text.png")
    assert not list(tmp_path.glob("*.tif"))


def test_failed_mask_write_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "keep.tif"
    write_mask(path, np.ones((4, 4), np.uint8))
    before = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tifffile, "imwrite", broken)
    with pytest.raises(OSError):
        write_mask(path, np.zeros((4, 4), np.uint8))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.tif"]


# --------------------------------------------------------------------------------------- atomic writes


def test_atomic_write_text_and_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "manifest.json"
    atomic_write_text(path, "first")
    atomic_write_text(path, "second ✓")
    assert path.read_text(encoding="utf-8") == "second ✓"
    atomic_write_bytes(tmp_path / "blob.bin", b"\x00\x01")
    assert (tmp_path / "blob.bin").read_bytes() == b"\x00\x01"

    def crash(*args, **kwargs):
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk gone"):
        atomic_write_text(path, "third")
    assert path.read_text(encoding="utf-8") == "second ✓"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blob.bin", "manifest.json"]
