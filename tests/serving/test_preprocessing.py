"""The graph-op preprocessing equals the library's Python path."""

from __future__ import annotations

import io

import keras
import numpy as np
import PIL.Image
import pytest
import tensorflow as tf

from keras_interp import images
from keras_interp.serving import preprocessing as prep

RNG = np.random.default_rng(0)
NOISE = {
    shape: (RNG.random(shape) * 255).astype(np.uint8)
    for shape in [(37, 53, 3), (53, 37, 3), (20, 20, 3), (9, 31, 3)]
}


def _smooth(height: int, width: int) -> np.ndarray:
    rows, cols = np.mgrid[:height, :width]
    pixels = 0.5 + 0.4 * np.sin(rows[..., None] / 7.0 + np.arange(3)) * np.cos(
        cols[..., None] / 5.0
    )
    return (pixels * 255).astype(np.uint8)


def _encode(array: np.ndarray, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    PIL.Image.fromarray(array).save(buffer, fmt, **kwargs)
    return buffer.getvalue()


@pytest.mark.parametrize("mode", ["crop", "stretch"])
@pytest.mark.parametrize("size", [(16, 16), (12, 20), (40, 30)])
def test_resize_image_equals_load_image(mode, size):
    for array in NOISE.values():
        expected = images.load_image(array, size, mode=mode)
        got = prep.resize_image(tf.constant(array / 255.0, tf.float32), size, mode)
        np.testing.assert_allclose(got, expected, atol=1e-5)


def test_resize_image_on_a_batch_and_identity():
    batch = np.stack([NOISE[(20, 20, 3)]] * 2) / 255.0
    got = prep.resize_image(tf.constant(batch, tf.float32), 16)
    expected = images.load_image(NOISE[(20, 20, 3)], 16)
    np.testing.assert_allclose(got[1], expected, atol=1e-5)
    same = prep.resize_image(tf.constant(batch, tf.float32), 20)
    np.testing.assert_allclose(same, batch, atol=1e-6)


@pytest.mark.parametrize("size", [16, 24, 64])
def test_cavlib_crop_equals_crop_to_square_and_resize(size):
    for array in NOISE.values():
        pixels = images.load_image(array)
        expected = images.crop_to_square_and_resize(pixels, size)
        got = prep.cavlib_crop(tf.constant(pixels), size)
        np.testing.assert_allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP", "GIF"])
def test_decode_image_equals_load_image(fmt):
    array = _smooth(30, 40) if fmt != "GIF" else NOISE[(20, 20, 3)] // 64 * 64
    data = _encode(array, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    expected = images.load_image(io.BytesIO(data))
    np.testing.assert_array_equal(prep.decode_image(tf.constant(data)), expected)


@pytest.mark.parametrize(
    "array",
    [
        (RNG.random((10, 12)) * 65535).astype(np.uint16),  # 16-bit greyscale
        (RNG.random((10, 12, 4)) * 255).astype(np.uint8),  # RGBA: alpha dropped
        (RNG.random((10, 12)) * 255).astype(np.uint8),  # greyscale
    ],
    ids=["16-bit", "rgba", "grey"],
)
def test_decode_png_modes(array):
    data = _encode(array, "PNG")
    expected = images.load_image(io.BytesIO(data))
    np.testing.assert_allclose(
        prep.decode_image(tf.constant(data)), expected, atol=1e-6
    )


def test_default_jpeg_decoding_would_differ():
    # Why decode_image has a JPEG branch: TF's default DCT differs from PIL.
    photo = (RNG.random((64, 64, 3)) * 255).astype(np.uint8)
    data = _encode(photo, "JPEG", quality=75)
    expected = images.load_image(io.BytesIO(data))
    default = tf.io.decode_image(data, channels=3).numpy() / 255.0
    assert np.abs(default - expected).max() > 1 / 255
    np.testing.assert_array_equal(prep.decode_image(tf.constant(data)), expected)


@pytest.mark.parametrize("mode", ["tf", "torch", "caffe"])
def test_scale_values_equals_keras_preprocess_input(mode):
    x = RNG.random((2, 4, 4, 3)).astype(np.float32)
    expected = keras.applications.imagenet_utils.preprocess_input(x * 255, mode=mode)
    np.testing.assert_allclose(prep.scale_values(x, mode), expected, atol=2e-5)


def test_scale_values_ranges():
    x = tf.constant([[0.0, 0.5, 1.0]])
    np.testing.assert_allclose(prep.scale_values(x, (-117, 138)), [[-117, 10.5, 138]])
    np.testing.assert_allclose(prep.scale_values(x, None), x)
    with pytest.raises(ValueError, match="Received: preprocessing='keras'"):
        prep.scale_values(x, "keras")
    with pytest.raises(ValueError, match="low < high"):
        prep.scale_values(x, (1, 1))


METHODS = ["scale short edge", "scale long edge", "scale width", "scale height"]


@pytest.mark.parametrize("method", METHODS + ["scale and crop"])
@pytest.mark.parametrize("shape", [(60, 90), (90, 60), (30, 20)])
def test_glimpse_resize_within_one_level_on_smooth_images(method, shape):
    array = _smooth(*shape)
    ratio = 1.3 if method == "scale and crop" else 1.0
    for length in (40, 120):
        pil = images.prepare_image(PIL.Image.fromarray(array), method, length, ratio)
        expected = np.asarray(pil) / 255.0
        got = prep.glimpse_resize(tf.constant(array / 255.0), method, length, ratio)
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() <= 1 / 255 + 1e-6
        assert np.abs(got - expected).mean() < 0.5 / 255


def test_glimpse_resize_on_noise_stays_within_the_documented_bound():
    array = NOISE[(53, 37, 3)]
    pil = images.prepare_image(PIL.Image.fromarray(array), "scale short edge", 120)
    got = prep.glimpse_resize(tf.constant(array / 255.0), "scale short edge", 120)
    difference = np.abs(got - np.asarray(pil) / 255.0)
    assert difference.max() <= 21 / 255 + 1e-6 and difference.mean() < 0.5 / 255


def test_prepare_images_traces_without_autograph():
    data = [_encode(_smooth(20, 15), "PNG"), _encode(_smooth(16, 30), "JPEG")]

    @tf.function(autograph=False)
    def run(contents):
        return prep.prepare_images(contents, 12, preprocessing="tf")

    model_inputs, pixels = run(tf.constant(data))
    expected = np.stack([images.load_image(io.BytesIO(d), 12) for d in data])
    np.testing.assert_allclose(pixels, expected, atol=1e-5)
    np.testing.assert_allclose(model_inputs, expected * 2 - 1, atol=2e-5)
    cavlib = prep.prepare_images(tf.constant(data), 12, mode="cavlib")[1]
    crops = [
        images.crop_to_square_and_resize(images.load_image(io.BytesIO(d)), 12)
        for d in data
    ]
    np.testing.assert_allclose(cavlib, np.stack(crops), atol=1e-5)


def test_bad_arguments():
    with pytest.raises(ValueError, match="Received: mode='fit'"):
        prep.resize_image(tf.zeros((4, 4, 3)), 2, "fit")
    with pytest.raises(ValueError, match="square `size`"):
        prep.prepare_images(tf.constant([b""]), (4, 6), mode="cavlib")
    with pytest.raises(ValueError, match="Received: size=0"):
        prep.cavlib_crop(tf.zeros((4, 4, 3)), 0)
    with pytest.raises(ValueError, match="Received: method='scale'"):
        prep.glimpse_resize(tf.zeros((4, 4, 3)), "scale")
