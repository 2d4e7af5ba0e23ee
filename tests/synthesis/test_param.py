"""Image parameterisations: ranges, init, alpha, Fourier colour statistics."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from keras_interp.synthesis.param import (
    COLOR_CORRELATION_SVD_SQRT,
    Param,
    fourier_image,
    pixel_image,
)


def colour_correlation(images):
    """The 3x3 correlation matrix of the colour channels over all pixels."""
    return np.corrcoef(np.asarray(images)[..., :3].reshape(-1, 3).T)


def hf_energy(images):
    x = np.asarray(images)[..., :3]
    return np.mean(np.diff(x, axis=1) ** 2) + np.mean(np.diff(x, axis=2) ** 2)


# -- shapes and ranges -----------------------------------------------------------
@pytest.mark.parametrize("factory", [pixel_image, fourier_image])
@pytest.mark.parametrize("alpha", [False, True])
def test_outputs_in_unit_range(factory, alpha):
    param = factory((3, 12, 15, 3), sd=2.0, alpha=alpha, seed=1)
    images = param.numpy()
    assert images.shape == (3, 12, 15, 4 if alpha else 3)
    assert images.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 1
    assert images.std() > 0.05  # sd=2 really spreads the values
    assert param.shape == images.shape and param.alpha is alpha
    assert all(isinstance(v, tf.Variable) for v in param.variables)


@pytest.mark.parametrize("factory", [pixel_image, fourier_image])
def test_default_start_is_grey_with_small_noise(factory):
    images = factory((1, 8, 8, 3)).numpy()
    np.testing.assert_allclose(images, 0.5, atol=0.02)
    assert images.std() > 0


@pytest.mark.parametrize("factory", [pixel_image, fourier_image])
def test_seeded(factory):
    a = factory((1, 8, 8, 3), seed=3).numpy()
    b = factory((1, 8, 8, 3), seed=3).numpy()
    c = factory((1, 8, 8, 3), seed=4).numpy()
    assert np.array_equal(a, b) and not np.array_equal(a, c)


# -- init ------------------------------------------------------------------------
@pytest.mark.parametrize("factory", [pixel_image, fourier_image])
@pytest.mark.parametrize("width", [10, 11])  # even and odd widths
def test_init_image_is_matched_exactly(factory, width):
    rng = np.random.default_rng(0)
    init = rng.uniform(0.05, 0.95, (2, 9, width, 3)).astype(np.float32)
    images = factory((2, 9, width, 3), init=init, sd=0.0).numpy()
    np.testing.assert_allclose(images, init, atol=1e-5)


@pytest.mark.parametrize("factory", [pixel_image, fourier_image])
def test_init_baseline_and_colour_broadcast(factory):
    images = factory((2, 6, 6, 3), init=0.3, sd=0.0).numpy()
    np.testing.assert_allclose(images, 0.3, atol=1e-5)
    colour = factory((1, 6, 6, 3), init=[0.2, 0.5, 0.8], sd=0.0).numpy()
    np.testing.assert_allclose(colour[0, 3, 2], [0.2, 0.5, 0.8], atol=1e-5)


@pytest.mark.parametrize("factory", [pixel_image, fourier_image])
def test_init_is_clipped_away_from_saturation(factory):
    images = factory((1, 4, 4, 3), init=0.0, sd=0.0).numpy()
    np.testing.assert_allclose(images, 0.01, atol=1e-5)


@pytest.mark.parametrize("factory", [pixel_image, fourier_image])
def test_alpha_init(factory):
    colour = factory((1, 4, 4, 3), init=0.2, alpha=True, sd=0.0).numpy()
    np.testing.assert_allclose(colour[..., :3], 0.2, atol=1e-5)
    np.testing.assert_allclose(colour[..., 3], 0.5, atol=1e-5)
    rgba = np.full((4, 4, 4), 0.7, np.float32)
    rgba[..., 3] = 0.9
    both = factory((1, 4, 4, 3), init=rgba, alpha=True, sd=0.0).numpy()
    np.testing.assert_allclose(both[0], rgba, atol=1e-5)


def test_init_from_pil_image():
    from PIL import Image

    array = np.zeros((8, 8, 3), np.uint8)
    array[..., 0] = 255
    images = pixel_image((1, 8, 8, 3), init=Image.fromarray(array), sd=0).numpy()
    np.testing.assert_allclose(images[0, ..., 0], 0.99, atol=1e-5)
    np.testing.assert_allclose(images[0, ..., 1:], 0.01, atol=1e-5)


def test_reset_restores_initial_values():
    param = pixel_image((1, 4, 4, 3), seed=0)
    before = param.numpy()
    param.variables[0].assign_add(tf.ones_like(param.variables[0]))
    assert not np.allclose(param.numpy(), before)
    param.reset()
    np.testing.assert_array_equal(param.numpy(), before)


# -- Fourier parameterisation: colour decorrelation and spectrum -------------------
def test_fourier_colours_follow_imagenet_correlation():
    """Independent spectra per decorrelated channel become RGB channels with
    the covariance C C^T of lucid's colour matrix; pixel images stay
    independent."""
    fourier = fourier_image((4, 32, 32, 3), sd=0.5, seed=0).numpy()
    plain = fourier_image((4, 32, 32, 3), sd=0.5, decorrelate=False, seed=0).numpy()
    pixel = pixel_image((4, 32, 32, 3), sd=0.5, seed=0).numpy()
    expected = COLOR_CORRELATION_SVD_SQRT @ COLOR_CORRELATION_SVD_SQRT.T
    expected = expected / np.sqrt(np.outer(np.diag(expected), np.diag(expected)))
    measured = colour_correlation(fourier)
    off = ~np.eye(3, dtype=bool)
    np.testing.assert_allclose(measured[off], expected[off], atol=0.12)
    assert measured[0, 1] > 0.7  # R and G move together, as in ImageNet
    assert np.abs(colour_correlation(plain)[off]).max() < 0.15
    assert np.abs(colour_correlation(pixel)[off]).max() < 0.05


def test_fourier_images_have_less_high_frequency_energy_than_pixels():
    fourier = fourier_image((2, 32, 32, 3), sd=0.5, seed=0).numpy()
    pixel = pixel_image((2, 32, 32, 3), sd=0.5, seed=0).numpy()
    total = [np.var(fourier), np.var(pixel)]
    # per unit of variance, the 1/f spectrum puts far less energy in
    # neighbouring-pixel differences than white noise
    assert hf_energy(fourier) / total[0] < 0.5 * hf_energy(pixel) / total[1]


def test_fourier_decay_power_zero_is_white():
    white = fourier_image((2, 32, 32, 1), sd=0.1, decay_power=0, decorrelate=False)
    x = white.numpy()[..., 0] - 0.5
    # white noise: neighbouring differences carry about 2x the variance
    ratio = np.mean(np.diff(x, axis=1) ** 2) / np.var(x)
    assert 1.6 < ratio < 2.4


# -- custom Param and errors ---------------------------------------------------
def test_custom_param():
    mask = tf.Variable(tf.zeros((1, 4, 4, 1)))
    image = tf.fill((1, 4, 4, 3), 0.25)
    param = Param([mask], lambda: tf.concat([image, tf.sigmoid(mask)], -1), alpha=True)
    assert param.shape == (1, 4, 4, 4)
    np.testing.assert_allclose(param.numpy()[..., 3], 0.5)
    assert "alpha=True" in repr(param)


def test_errors():
    with pytest.raises(ValueError, match="`shape` must be"):
        pixel_image((8, 8, 3))
    with pytest.raises(ValueError, match="must be a positive integer"):
        fourier_image((1, 0, 8, 3))
    with pytest.raises(ValueError, match="`sd` must be a finite non-negative"):
        pixel_image((1, 8, 8, 3), sd=-1.0)
    with pytest.raises(ValueError, match="decorrelation needs 3 colour"):
        fourier_image((1, 8, 8, 1))
    with pytest.raises(ValueError, match=r"`init` must hold finite values in \[0, 1\]"):
        pixel_image((1, 8, 8, 3), init=255.0)
    with pytest.raises(ValueError, match="`init` must broadcast"):
        fourier_image((1, 8, 8, 3), init=np.zeros((5, 5, 3)))
    with pytest.raises(TypeError, match="`variables` must be a non-empty"):
        Param([], lambda: tf.zeros((1, 2, 2, 3)))
    with pytest.raises(TypeError, match="`fn` must be callable"):
        Param([tf.Variable(1.0)], "not callable")
