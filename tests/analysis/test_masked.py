"""Masked images and the shared channel activation, on a hand-built detector.

The model's conv layer `detect` has two channels whose kernels are set by hand:
channel 0 answers vertical black/white stripes (a zero-sum 4x4 kernel, so it
ignores flat regions, horizontal stripes and checkerboards), channel 1 answers
red. The texture image holds the stripes (the patch) in the middle and stripe
and checker distractors in the four corners.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import skimage.color

from keras_interp.analysis import channel_activation, masked_image
from keras_interp.analysis._activation import ChannelActivation, reduce_maps

SIZE = 64
PATCH = (slice(24, 40), slice(24, 40))
CORNERS = [(8, 8), (8, 48), (48, 8), (48, 48)]


def detector_model(scale: float = 1.0) -> keras.Model:
    """`detect` (2 hand-set channels, ReLU) -> global max pool -> Dense.
    `scale` divides the kernels, for inputs `scale` times larger."""
    inputs = keras.Input((SIZE, SIZE, 3), name="images")
    x = keras.layers.Conv2D(2, 4, padding="same", activation="relu", name="detect")(
        inputs
    )
    x = keras.layers.GlobalMaxPooling2D(name="pool")(x)
    outputs = keras.layers.Dense(3, name="logits")(x)
    model = keras.Model(inputs, outputs, name="detector")
    kernel = np.zeros((4, 4, 3, 2), np.float32)
    stripes = np.tile(np.array([-1, 1, -1, 1], np.float32), (4, 1))
    kernel[..., 0] = stripes[..., None] / 24  # 1 on aligned 0/1 stripes
    kernel[..., 0, 1] = 1 / 16  # + red
    kernel[..., 1:, 1] = -1 / 16  # - green - blue
    model.get_layer("detect").set_weights([kernel / scale, np.zeros(2, np.float32)])
    return model


@pytest.fixture(scope="module")
def model():
    return detector_model()


def texture_image() -> np.ndarray:
    """Grey 0.5; vertical 0/1 stripes in PATCH; horizontal stripes and
    checkerboards (8x8) in the corners."""
    image = np.full((SIZE, SIZE, 3), 0.5, np.float32)
    cols = (np.arange(SIZE) % 2).astype(np.float32)
    vertical = np.broadcast_to(cols[None, :], (SIZE, SIZE))
    horizontal = vertical.T
    checker = (cols[:, None] + cols[None, :]) % 2
    image[PATCH] = vertical[PATCH][..., None]
    for (r, c), pattern in zip(CORNERS, [horizontal, checker, checker, horizontal]):
        image[r : r + 8, c : c + 8] = pattern[r : r + 8, c : c + 8, None]
    return image


def inside() -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), bool)
    mask[PATCH] = True
    return mask


def test_masked_image_keeps_the_stripes_and_drops_the_distractors(model):
    image = texture_image()
    result = masked_image(model, "detect", 0, image)
    grey = skimage.color.rgb2gray(image)
    assert result.image.shape == (SIZE, SIZE, 3)
    assert result.image.dtype == np.float32
    np.testing.assert_allclose(result.image[..., 0], result.image[..., 2])
    diff = np.abs(result.image[..., 0] - grey)
    assert diff[inside()].mean() < 0.05
    distractors = ~inside() & (np.abs(grey - grey.mean()) > 0.1)
    assert distractors.sum() == 4 * 64  # every pixel of the corner patterns
    assert (diff[distractors] < 0.05).mean() < 0.3
    # The mask shrank from the 8..56 hull to about the patch (24..40).
    rows = np.flatnonzero(result.mask.any(axis=1))
    assert 20 <= rows[0] <= 24 and 39 <= rows[-1] <= 43
    assert result.erosions >= 10


def test_stopping_rule_returns_the_last_image_above_the_target(model):
    result = masked_image(model, "detect", 0, texture_image())
    target = 0.9 * result.baseline
    assert result.trace[0] == pytest.approx(result.baseline)
    assert np.all(result.trace[: result.erosions + 1] >= target)
    assert result.trace[result.erosions + 1] < target
    assert result.activation == pytest.approx(result.trace[result.erosions])
    again = channel_activation(model, "detect", 0, result.image[None])
    np.testing.assert_allclose(again, [result.activation], rtol=1e-5)


def test_unit_and_batching_and_colour(model):
    image = texture_image()
    by_unit = masked_image(model, "detect", 0, image, unit=(31, 31))
    assert by_unit.baseline == pytest.approx(1.0, abs=1e-5)
    assert by_unit.mask[31, 31] and by_unit.mask.sum() < 30 * 30
    one = masked_image(model, "detect", 0, image, batch_size=1)
    many = masked_image(model, "detect", 0, image, batch_size=64)
    np.testing.assert_array_equal(one.mask, many.mask)
    np.testing.assert_allclose(one.trace, many.trace[: len(one.trace)], rtol=1e-5)
    colour = masked_image(model, "detect", 0, image, grayscale=False)
    np.testing.assert_array_equal(colour.mask, many.mask)


def test_preprocessing_and_uint8_input():
    image = texture_image()
    plain = masked_image(detector_model(), "detect", 0, image)
    scaled = masked_image(
        detector_model(scale=255.0),
        "detect",
        0,
        image,
        preprocessing=lambda x: x * 255,
    )
    np.testing.assert_array_equal(plain.mask, scaled.mask)
    np.testing.assert_allclose(plain.image, scaled.image)
    with pytest.warns(DeprecationWarning, match="`preprocess` is deprecated"):
        old = masked_image(
            detector_model(scale=255.0),
            "detect",
            0,
            image,
            preprocess=lambda x: x * 255,
        )
    np.testing.assert_array_equal(old.mask, scaled.mask)
    with pytest.raises(ValueError, match="not both"):
        masked_image(
            detector_model(), "detect", 0, image, preprocess=abs, preprocessing=abs
        )
    as_uint8 = masked_image(
        detector_model(), "detect", 0, np.round(image * 255).astype(np.uint8)
    )
    np.testing.assert_array_equal(plain.mask, as_uint8.mask)


@pytest.mark.parametrize("criterion", ["max", "mean", "median", "l1", "l2", "L1", "L2"])
def test_activation_criteria_match_numpy(model, criterion):
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(3, SIZE, SIZE, 3)).astype(np.float32)
    maps = keras.Model(model.input, model.get_layer("detect").output)(images)
    maps = np.asarray(maps)[..., 1].reshape(3, -1).astype(np.float64)
    expected = {
        "max": maps.max(1),
        "mean": maps.mean(1),
        "median": np.median(maps, 1),
        "l1": np.abs(maps).sum(1),
        "l2": np.sqrt((maps**2).sum(1)),
        "L1": np.abs(maps).sum(1),  # dnnbrain's spelling, accepted as is
        "L2": np.sqrt((maps**2).sum(1)),
    }[criterion]
    got = channel_activation(model, "detect", 1, images, criterion=criterion)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(reduce_maps(maps, criterion), expected, rtol=1e-5)
    unit = channel_activation(model, "detect", 1, images, unit=(3, 5), batch_size=2)
    np.testing.assert_allclose(unit, maps.reshape(3, SIZE, SIZE)[:, 3, 5], rtol=1e-5)


def test_nested_layer_and_dense_layer():
    inner = detector_model()
    inputs = keras.Input((SIZE, SIZE, 3))
    outer = keras.Model(inputs, keras.layers.Dense(2, name="head")(inner(inputs)))
    image = texture_image()[None]
    nested = channel_activation(outer, "detector/detect", 0, image, criterion="max")
    np.testing.assert_allclose(nested, [1.0], atol=1e-5)
    logits = np.asarray(outer(image))
    dense = channel_activation(outer, "head", 1, image)
    np.testing.assert_allclose(dense, logits[:, 1], rtol=1e-5)


def test_mask_eroded_away_returns_the_mean_image(model):
    # A red image with a white blob: in colour, the red channel prefers the
    # mean fill to the blob, so the mask erodes to nothing.
    image = np.zeros((SIZE, SIZE, 3), np.float32)
    image[..., 0] = 1.0
    image[28:36, 28:36] = 1.0
    result = masked_image(model, "detect", 1, image, grayscale=False)
    assert not result.mask.any()
    np.testing.assert_allclose(
        result.image, np.broadcast_to(image.mean((0, 1)), image.shape), atol=1e-6
    )
    assert result.activation >= result.baseline
    assert len(result.trace) == result.erosions + 1


# --- errors -----------------------------------------------------------------


def test_bad_layer_lists_the_closest_names(model):
    with pytest.raises(
        ValueError, match=r"No layer 'detekt'.*Closest layer names: detect"
    ):
        masked_image(model, "detekt", 0, texture_image())


def test_channel_out_of_range(model):
    with pytest.raises(
        ValueError, match=r"`channel` must be in \[0, 2\).*numbered from 0"
    ):
        masked_image(model, "detect", 2, texture_image())
    with pytest.raises(ValueError, match=r"must be a non-negative integer"):
        masked_image(model, "detect", -1, texture_image())
    with pytest.raises(TypeError, match=r"`channel` must be an integer"):
        masked_image(model, "detect", 0.5, texture_image())
    with pytest.raises(ValueError, match=r"`channel` must be in \[0, 3\)"):
        channel_activation(model, "logits", 3, texture_image()[None])


def test_non_image_inputs(model):
    with pytest.raises(TypeError, match=r"`image` must be a path"):
        masked_image(model, "detect", 0, {"pixels": 1})
    with pytest.raises(ValueError, match=r"`image` must be a non-empty image"):
        masked_image(model, "detect", 0, np.zeros(5))
    with pytest.raises(ValueError, match=r"must be one image \(H, W, 3\), not a batch"):
        masked_image(model, "detect", 0, texture_image()[None])
    with pytest.raises(ValueError, match=r"Float images must hold values in \[0, 1\]"):
        masked_image(model, "detect", 0, texture_image() * 255)
    with pytest.raises(TypeError, match=r"`images` must be a list or tuple"):
        channel_activation(model, "detect", 0, "image.png")


def test_bad_units(model):
    with pytest.raises(ValueError, match=r"`unit` is outside the \(64, 64\) map"):
        masked_image(model, "detect", 0, texture_image(), unit=(64, 3))
    with pytest.raises(ValueError, match=r"`unit` must be \(row, col\)"):
        masked_image(model, "detect", 0, texture_image(), unit=(1, 2, 3))
    with pytest.raises(ValueError, match=r"`unit` needs a spatial layer"):
        masked_image(model, "logits", 0, texture_image(), unit=(0, 0))


def test_bad_parameters_and_hopeless_images(model):
    image = texture_image()
    with pytest.raises(
        ValueError, match=r"`target_reduction_ratio` must be in \(0, 1\]"
    ):
        masked_image(model, "detect", 0, image, target_reduction_ratio=1.5)
    with pytest.raises(ValueError, match=r"`activation_criterion` must be one of"):
        masked_image(model, "detect", 0, image, activation_criterion="sum")
    with pytest.raises(TypeError, match=r"`preprocessing` must be callable"):
        masked_image(model, "detect", 0, image, preprocessing="caffe")
    with pytest.raises(ValueError, match=r"After 3 erosions the activation"):
        masked_image(model, "detect", 0, image, max_iteration=3)
    with pytest.raises(ValueError, match=r"non-positive activation \(0\)"):
        masked_image(model, "detect", 1, image)  # no red in the texture
    with pytest.raises(ValueError, match=r"No pixel of `image` stands out"):
        masked_image(model, "detect", 0, np.full((SIZE, SIZE, 3), 0.3))
    with pytest.raises(ValueError, match=r"`batch_size` must be a positive integer"):
        ChannelActivation(model, "detect", 0, batch_size=0)
