"""Tests for keras_interp.images: loading, resizing, CAVlib's warp, glimpse's rules."""

from __future__ import annotations

import io
import pathlib
import struct
import zlib

import numpy as np
import PIL.Image
import pytest
import scipy.ndimage
import skimage.data
import tensorflow as tf

from keras_interp.images import (
    FLOAT_TOLERANCE,
    ResizeMethod,
    crop_to_square_and_resize,
    load_image,
    load_images,
    prepare_image,
)


@pytest.fixture(scope="module")
def chelsea() -> np.ndarray:
    return skimage.data.chelsea()  # (300, 451, 3) uint8, shipped with skimage


@pytest.fixture
def chelsea_png(tmp_path, chelsea) -> pathlib.Path:
    path = tmp_path / "chelsea.png"
    PIL.Image.fromarray(chelsea).save(path)
    return path


def gradient(height: int = 4, width: int = 8) -> np.ndarray:
    """`I[y, x] = (10 y + x) / 100`: bilinear sampling is exact on it."""
    y, x = np.mgrid[0:height, 0:width]
    return (10 * y + x) / 100.0


# --- every input kind gives the same array -----------------------------------


def test_every_input_kind_gives_identical_arrays(chelsea, chelsea_png):
    expected = chelsea.astype(np.float32) / 255
    with open(chelsea_png, "rb") as file:
        from_file = load_image(file)
    with PIL.Image.open(chelsea_png) as pil:
        from_pil = load_image(pil)
    results = {
        "str": load_image(str(chelsea_png)),
        "path": load_image(chelsea_png),
        "file": from_file,
        "bytesio": load_image(io.BytesIO(chelsea_png.read_bytes())),
        "pil": from_pil,
        "uint8": load_image(chelsea),
        "float32": load_image(chelsea.astype(np.float32) / 255),
        "float64": load_image(chelsea / 255.0),
        "tensor_uint8": load_image(tf.constant(chelsea)),
        "tensor_float": load_image(tf.constant(chelsea, tf.float32) / 255),
    }
    for kind, result in results.items():
        assert result.dtype == np.float32, kind
        assert result.shape == (300, 451, 3), kind
        np.testing.assert_array_equal(result, expected, err_msg=kind)


def test_uint8_and_float_agree_on_every_value():
    values = np.arange(256, dtype=np.uint8).reshape(16, 16)
    from_uint8 = load_image(values)
    np.testing.assert_array_equal(from_uint8, load_image(values / 255.0))
    np.testing.assert_array_equal(from_uint8[..., 0], values / np.float32(255))
    assert from_uint8[0, 0, 0] == 0.0 and from_uint8[-1, -1, 0] == 1.0


def test_uint16_and_16_bit_pil_use_the_16_bit_range():
    values = np.array([[0, 65535], [32768, 1000]], np.uint16)
    expected = np.repeat((values / np.float32(65535))[..., None], 3, axis=-1)
    np.testing.assert_array_equal(load_image(values), expected)
    pil = PIL.Image.fromarray(values)
    assert pil.mode == "I;16"
    np.testing.assert_array_equal(load_image(pil), expected)
    np.testing.assert_array_equal(load_image(pil.convert("I")), expected)


def test_other_integer_dtypes_are_read_as_8_bit():
    values = np.array([[0, 51], [102, 255]], np.int64)
    np.testing.assert_array_equal(load_image(values), load_image(values / 255.0))


def test_float_values_within_the_tolerance_are_clipped():
    image = np.array([[-FLOAT_TOLERANCE / 2, 1 + FLOAT_TOLERANCE / 2]])
    np.testing.assert_array_equal(load_image(image)[0, :, 0], [0.0, 1.0])


# --- channels ------------------------------------------------------------------


def test_rgba_drops_alpha():
    rgba = np.random.default_rng(0).integers(0, 256, (5, 6, 4), dtype=np.uint8)
    expected = rgba[..., :3] / np.float32(255)
    np.testing.assert_array_equal(load_image(rgba), expected)
    np.testing.assert_array_equal(load_image(PIL.Image.fromarray(rgba)), expected)
    np.testing.assert_array_equal(load_image(rgba / 255.0), expected)


def test_grayscale_becomes_rgb_by_repetition():
    gray = np.random.default_rng(1).integers(0, 256, (5, 6), dtype=np.uint8)
    expected = np.repeat(gray[..., None] / np.float32(255), 3, axis=-1)
    for image in (gray, gray[..., None], PIL.Image.fromarray(gray)):
        np.testing.assert_array_equal(load_image(image), expected)
    pil_la = PIL.Image.fromarray(gray).convert("LA")
    np.testing.assert_array_equal(load_image(pil_la), expected)


def test_pil_palette_and_bilevel_modes():
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[0, 0] = (255, 0, 0)
    rgb[1, 2] = (0, 0, 255)
    palette = PIL.Image.fromarray(rgb).convert("P", palette=PIL.Image.ADAPTIVE)
    np.testing.assert_array_equal(load_image(palette), rgb / np.float32(255))
    bilevel = PIL.Image.fromarray(np.array([[0, 255]], np.uint8)).convert("1")
    np.testing.assert_array_equal(load_image(bilevel)[0], [[0, 0, 0], [1, 1, 1]])


# --- resizing (load_image) -----------------------------------------------------


def test_crop_resize_of_a_gradient_by_hand():
    # 4x8 -> 2x2: s = max(2/4, 2/8) = 1/2; the centre 4x4 window is kept and
    # output pixel o reads input (o + 0.5 - 1) * 2 + in/2 - 0.5, i.e.
    # y = 2r + 0.5 and x = 2c + 2.5, so out = (10 y + x) / 100.
    result = load_image(gradient(), size=2)
    expected = [[0.075, 0.095], [0.275, 0.295]]
    for channel in range(3):
        np.testing.assert_allclose(result[..., channel], expected, atol=1e-7)


def test_crop_to_a_rectangle_by_hand():
    # 4x8 -> (2, 3): s = max(2/4, 3/8) = 1/2; y = 2r + 0.5, x = 2c + 1.5.
    result = load_image(gradient(), size=(2, 3))[..., 0]
    expected = [[0.065, 0.085, 0.105], [0.265, 0.285, 0.305]]
    np.testing.assert_allclose(result, expected, atol=1e-7)


def test_crop_with_whole_pixel_offsets_is_a_slice():
    image = np.random.default_rng(2).random((6, 4, 3))
    np.testing.assert_array_equal(
        load_image(image, size=4), image[1:5].astype(np.float32)
    )


def test_same_size_is_returned_unchanged():
    image = np.random.default_rng(3).random((7, 5, 3)).astype(np.float32)
    np.testing.assert_array_equal(load_image(image, size=(7, 5)), image)


@pytest.mark.parametrize("size", [(9, 4), (11, 13), (3, 2), (5, 7)])
def test_stretch_matches_tf_image_resize(size):
    image = np.random.default_rng(4).random((5, 7, 3)).astype(np.float32)
    expected = tf.image.resize(image, size, method="bilinear").numpy()
    np.testing.assert_allclose(
        load_image(image, size, mode="stretch"), expected, atol=1e-6
    )


def test_crop_on_a_photo_matches_tf_resize_of_the_crop(chelsea):
    # 300x450 -> 150: s = 1/2 and the centred 300x300 window is columns 75..374.
    photo = chelsea[:, :450]
    result = load_image(photo, size=150)
    crop = photo[:, 75:375].astype(np.float32) / 255
    expected = tf.image.resize(crop, (150, 150), method="bilinear").numpy()
    np.testing.assert_allclose(result, expected, atol=1e-6)


def test_load_images_stacks_and_resizes(chelsea):
    batch = load_images([chelsea, gradient(), PIL.Image.fromarray(chelsea)], 4)
    assert batch.shape == (3, 4, 4, 3) and batch.dtype == np.float32
    np.testing.assert_array_equal(batch[0], load_image(chelsea, 4))
    np.testing.assert_array_equal(batch[1], load_image(gradient(), 4))
    np.testing.assert_array_equal(batch[0], batch[2])
    stacked = load_images(np.stack([chelsea, chelsea]))
    np.testing.assert_array_equal(stacked[1], chelsea / np.float32(255))


# --- CAVlib's warp -------------------------------------------------------------


def test_cavlib_warp_downsampling_by_hand():
    # s = 1/2, tx = 8/2 * s - 1 = 1, ty = 0: output (r, c) reads input
    # (2r, 2c + 2): integer coordinates, so exact pixels of the gradient.
    result = crop_to_square_and_resize(gradient(), 2)
    np.testing.assert_allclose(result, [[0.02, 0.04], [0.22, 0.24]], atol=1e-12)


def test_cavlib_warp_upsampling_is_asymmetric_by_hand():
    # 2x2 -> 4x4: s = 2, t = 0: output o reads input o / 2 = 0, .5, 1, 1.5 and
    # 1.5 is clamped to the last pixel (mode="edge"), so the last row and
    # column repeat: integer pixel centres, not TF's half-pixel convention.
    image = np.array([[0.0, 0.4], [0.8, 1.0]])
    expected = [
        [0.0, 0.2, 0.4, 0.4],
        [0.4, 0.55, 0.7, 0.7],
        [0.8, 0.9, 1.0, 1.0],
        [0.8, 0.9, 1.0, 1.0],
    ]
    np.testing.assert_allclose(crop_to_square_and_resize(image, 4), expected)
    half_pixel = load_image(image, 4)[..., 0]
    np.testing.assert_allclose(half_pixel[0], [0.0, 0.1, 0.3, 0.4], atol=1e-7)


def test_cavlib_warp_on_a_photo_follows_the_documented_formula(chelsea):
    result = crop_to_square_and_resize(chelsea, 224)
    assert result.shape == (224, 224, 3) and result.dtype == np.float64
    height, width = chelsea.shape[:2]
    scale = max(224 / height, 224 / width)
    grid = np.arange(224.0)
    rows, cols = np.meshgrid(
        (grid - 112) / scale + height / 2,
        (grid - 112) / scale + width / 2,
        indexing="ij",
    )
    expected = np.stack(
        [
            scipy.ndimage.map_coordinates(
                chelsea[..., k] / 255.0, [rows, cols], order=1, mode="nearest"
            )
            for k in range(3)
        ],
        axis=-1,
    )
    np.testing.assert_allclose(result, expected, atol=1e-9)


def test_cavlib_warp_keeps_an_image_of_the_right_size():
    image = np.zeros((224, 224, 3), np.uint8)
    assert crop_to_square_and_resize(image) is image


def test_cavlib_warp_errors():
    with pytest.raises(ValueError, match=r"`array` must be a non-empty image"):
        crop_to_square_and_resize(np.zeros((2, 3, 4, 3)))
    with pytest.raises(ValueError, match=r"`size` must be a positive integer"):
        crop_to_square_and_resize(np.zeros((2, 3, 3)), size=0)
    with pytest.raises(TypeError, match=r"`array` must be a numpy array"):
        crop_to_square_and_resize([[0.0]])


# --- errors --------------------------------------------------------------------


def test_unsupported_types_are_named():
    with pytest.raises(TypeError, match=r"`image` must be a path.*Received: image="):
        load_image([[0.0, 1.0]])
    with pytest.raises(TypeError, match=r"Received: image=42"):
        load_image(42)
    with pytest.raises(TypeError, match=r"use `load_image` for a single image"):
        load_images("cat.png")


def test_float_out_of_range_says_so():
    with pytest.raises(ValueError, match=r"values in \[0, 1\], got \[0, 255\]"):
        load_image(np.array([[0.0, 255.0]]))
    with pytest.raises(ValueError, match=r"got \[-0.5, 0.5\]"):
        load_image(np.array([[-0.5, 0.5]]))


def test_non_finite_values():
    with pytest.raises(ValueError, match=r"must be finite, but 2 value\(s\)"):
        load_image(np.array([[np.nan, np.inf, 0.5]]))


def test_bad_integer_range_and_dtype():
    with pytest.raises(ValueError, match=r"int64 must hold values in \[0, 255\]"):
        load_image(np.array([[0, 300]]))
    with pytest.raises(ValueError, match=r"got dtype complex128"):
        load_image(np.ones((2, 2), complex))


def test_bad_shapes():
    with pytest.raises(ValueError, match=r"of shape \(H, W\), \(H, W, 1\)"):
        load_image(np.zeros((4, 4, 2)))
    with pytest.raises(ValueError, match=r"non-empty image"):
        load_image(np.zeros((0, 4, 3)))
    with pytest.raises(ValueError, match=r"non-empty image"):
        load_image(np.zeros((1, 4, 4, 3)))


def test_unreadable_files_name_the_path(tmp_path):
    path = tmp_path / "not_an_image.png"
    path.write_text("hello")
    with pytest.raises(ValueError, match=r"Could not read an image from '.*not_an"):
        load_image(path)
    with pytest.raises(ValueError, match=r"Could not read an image from '.*missing"):
        load_image(str(tmp_path / "missing.png"))
    with pytest.raises(ValueError, match=r"<file object>"):
        load_image(io.BytesIO(b"garbage"))


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims `width x height` RGB pixels, with no real data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + chunk(b"IEND", b"")
    )


def test_decompression_bomb_is_our_error(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header(100_000, 100_000))  # claims 10**10 pixels
    for source in (path, str(path), io.BytesIO(path.read_bytes())):
        with pytest.raises(ValueError, match="safety limit") as info:
            load_image(source)
        assert isinstance(info.value.__cause__, PIL.Image.DecompressionBombError)
        assert "MAX_IMAGE_PIXELS" in str(info.value)
        assert "Received: image=" in str(info.value)


def test_every_pil_failure_is_our_error(tmp_path, chelsea_png):
    data = chelsea_png.read_bytes()
    cases = {
        "truncated.png": data[: len(data) // 3],
        "header_only.png": data[:40],
        "bad_header.png": _png_header(4, 4)[:20] + b"\x00" * 40,
        "empty.png": b"",
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=f"Could not read an image from .*{name}"):
            load_image(tmp_path / name)


def test_bad_size_and_mode():
    with pytest.raises(ValueError, match=r"`size` must be a positive integer"):
        load_image(gradient(), size=0)
    with pytest.raises(TypeError, match=r"`size` must be an integer"):
        load_image(gradient(), size=2.5)
    with pytest.raises(ValueError, match=r"`size` must be an int or a pair"):
        load_image(gradient(), size=(1, 2, 3))
    with pytest.raises(ValueError, match=r"`mode` must be one of 'crop', 'stretch'"):
        load_image(gradient(), size=2, mode="pad")


def test_load_images_errors():
    with pytest.raises(ValueError, match=r"`images` must not be empty"):
        load_images([])
    with pytest.raises(ValueError, match=r"different sizes.*pass `size`"):
        load_images([np.zeros((2, 2)), np.zeros((3, 3))])


# --- glimpse's prepare_image ---------------------------------------------------


def test_prepare_image_none_returns_the_same_image():
    data = np.random.default_rng(5).integers(0, 256, (100, 101), dtype=np.uint8)
    img = PIL.Image.fromarray(data)
    assert prepare_image(img, ResizeMethod.NONE) is img
    assert prepare_image(img, "none") is img


@pytest.mark.parametrize(
    "method, length, aspect_ratio, size",
    [
        (ResizeMethod.SCALE_SHORT_EDGE, 256, 1.0, (256, 512)),
        (ResizeMethod.SCALE_LONG_EDGE, 256, 1.0, (128, 256)),
        (ResizeMethod.SCALE_WIDTH, 256, 1.0, (256, 512)),
        (ResizeMethod.SCALE_HEIGHT, 256, 1.0, (128, 256)),
        (ResizeMethod.SCALE_AND_CROP, 256, 0.5, (256, 512)),  # scale, no crop
        (ResizeMethod.SCALE_AND_CROP, 100, 1, (100, 100)),  # crop, no scale
        (ResizeMethod.SCALE_AND_CROP, 256, 0.25, (256, 1024)),  # both
    ],
)
def test_prepare_image_glimpse_cases(method, length, aspect_ratio, size):
    img = PIL.Image.new("L", (100, 200))
    result = prepare_image(img, method, length=length, aspect_ratio=aspect_ratio)
    assert result.size == size
    assert prepare_image(img, method.value, length, aspect_ratio).size == size


def test_prepare_image_default_is_short_edge_220():
    assert prepare_image(PIL.Image.new("L", (100, 200))).size == (220, 440)


def test_prepare_image_resampling_filters():
    data = np.random.default_rng(6).integers(0, 256, (20, 30), dtype=np.uint8)
    img = PIL.Image.fromarray(data)
    up = prepare_image(img, "scale short edge", length=40)  # width grows: BICUBIC
    assert up.tobytes() == img.resize((60, 40), PIL.Image.BICUBIC).tobytes()
    down = prepare_image(img, "scale short edge", length=10)  # shrinks: LANCZOS
    assert down.tobytes() == img.resize((15, 10), PIL.Image.LANCZOS).tobytes()


def test_prepare_image_scale_and_crop_keeps_the_centre():
    data = np.arange(8 * 4, dtype=np.uint8).reshape(8, 4)  # h=8, w=4
    img = PIL.Image.fromarray(data)
    result = prepare_image(img, "scale and crop", length=4, aspect_ratio=1.0)
    np.testing.assert_array_equal(np.asarray(result), data[2:6])


def test_prepare_image_errors():
    img = PIL.Image.new("L", (10, 10))
    with pytest.raises(ValueError, match=r"`method` must be one of 'none', 'scale"):
        prepare_image(img, "scale diagonal")
    with pytest.raises(ValueError, match=r"Received: length=0"):
        prepare_image(img, length=0)
    with pytest.raises(TypeError, match=r"`length` must be an integer"):
        prepare_image(img, length=2.0)
    with pytest.raises(ValueError, match=r"finite positive number.*aspect_ratio=0"):
        prepare_image(img, "scale and crop", aspect_ratio=0)
    with pytest.raises(TypeError, match=r"`img` must be a PIL image"):
        prepare_image(np.zeros((10, 10)))


def test_resize_method_values():
    assert [m.value for m in ResizeMethod] == [
        "none",
        "scale short edge",
        "scale long edge",
        "scale width",
        "scale height",
        "scale and crop",
    ]
    assert ResizeMethod("scale width") is ResizeMethod.SCALE_WIDTH
    assert ResizeMethod.SCALE_WIDTH == "scale width"
