"""Meta wrappers on stand-in methods with known answers; the contract table
covers them over every real method."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from keras_interp.inspection import expose
from keras_interp.methods._base import channels_last, scores
from keras_interp.methods.meta import (
    fingerprint,
    sample_noise,
    smooth,
    squaregrad,
    tta,
    vargrad,
)
from keras_interp.testing import models


def input_gradient(model, inputs, indices=None, *, spatial_axis=(-3, -2)):
    """d score / d x summed over channels, (B, H, W, L)."""
    x = tf.convert_to_tensor(inputs, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        logits, _ = scores(model, x, indices)
    jacobian = tape.batch_jacobian(logits, x)  # (B, L, H, W, C)
    return logits, tf.transpose(tf.reduce_sum(jacobian, -1), [0, 2, 3, 1])


def pixels(model, inputs, indices=None, *, spatial_axis=(-3, -2)):
    """Maps = the first input channel; logits = their mean: noise is visible."""
    x = tf.convert_to_tensor(inputs, tf.float32)
    return tf.reduce_mean(x, axis=(1, 2, 3))[:, None], x[..., :1]


@pytest.fixture(scope="module")
def linear():
    return models.linear(size=6, classes=2)


def _x(batch=3, size=6, seed=0):
    return tf.constant(
        np.random.default_rng(seed).normal(size=(batch, size, size, 3)), tf.float32
    )


def test_smooth_of_a_linear_model_is_exact(linear):
    x = _x()
    logits, maps = input_gradient(linear, x, [[0], [1], [0]])
    s_logits, s_maps = smooth(input_gradient, 6, 0.3, seed=1)(
        linear, x, [[0], [1], [0]]
    )
    np.testing.assert_allclose(s_maps, maps, atol=1e-5)  # the gradient is constant
    assert not np.allclose(s_logits, logits)  # the logits move with the noise


def test_smooth_mean_and_clean_first_pass():
    x = _x(2, 4)
    repetitions, noise, seed = 5, 0.5, 3
    _, maps = smooth(pixels, repetitions, noise, seed=seed, batch_size=2)(None, x)
    eps = sample_noise(x, repetitions - 1, noise, seed)
    assert eps.shape == (repetitions - 1, 2, 4, 4, 3)
    np.testing.assert_allclose(np.std(eps), noise, rtol=0.1)
    expected = (
        x[..., :1] + tf.reduce_sum(x[None, ..., :1] + eps[..., :1], 0)
    ) / repetitions
    np.testing.assert_allclose(maps, expected, atol=1e-5)


@pytest.mark.parametrize("batch_size", [1, 2, 7, 64])
def test_smooth_chunking_is_invisible(batch_size):
    x = _x(2, 4)
    _, reference = smooth(pixels, 6, 0.2, seed=0, batch_size=64)(None, x)
    _, maps = smooth(pixels, 6, 0.2, seed=0, batch_size=batch_size)(None, x)
    np.testing.assert_allclose(maps, reference, atol=1e-6)


def test_noise_follows_the_image_not_the_batch():
    x = _x(3, 4)
    wrapped = smooth(pixels, 4, 0.3, seed=7)
    _, together = wrapped(None, x)
    _, alone = wrapped(None, x[1:2])
    _, reversed_ = wrapped(None, x[::-1])
    np.testing.assert_allclose(alone[0], together[1], atol=1e-6)
    np.testing.assert_allclose(reversed_[::-1], together, atol=1e-6)
    _, other_seed = smooth(pixels, 4, 0.3, seed=8)(None, x)
    assert not np.allclose(other_seed, together)
    compiled = tf.function(lambda x: fingerprint(x), jit_compile=True)(x)
    np.testing.assert_array_equal(compiled, fingerprint(x))
    assert len(set(fingerprint(x).numpy().tolist())) == 3


def test_vargrad_and_squaregrad():
    x = _x(2, 4)
    passes = tf.concat(
        [
            x[None],
            x[None] + sample_noise(x, 3, 0.2, 0),
        ],
        0,
    )[..., :1]
    _, var = vargrad(pixels, 4, 0.2, seed=0)(None, x)
    _, sq = squaregrad(pixels, 4, 0.2, seed=0)(None, x)
    np.testing.assert_allclose(var, np.var(passes, axis=0), atol=1e-5)
    np.testing.assert_allclose(sq, np.mean(np.square(passes), axis=0), atol=1e-5)


def test_identity_laws_run_the_real_path(linear):
    x = _x()
    calls = []

    def counted(model, inputs, indices=None, *, spatial_axis=(-3, -2)):
        calls.append(inputs.shape)
        return input_gradient(model, inputs, indices)

    reference = input_gradient(linear, x, [[1], [0], [1]])
    for wrapped, passes in (
        (smooth(counted, repetitions=4, noise=0.0, batch_size=64), 1),
        (smooth(counted, repetitions=4, noise=0.0, batch_size=3), 4),
        (tta(counted, scales=(1.0,), hflip=False), 2),
    ):
        calls.clear()
        for a, b in zip(wrapped(linear, x, [[1], [0], [1]]), reference):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
        # The method really ran on the copies: 4 copies of 3 images in one
        # call, or 4 calls of 3; tta's unscaled and rescaled passes.
        assert len(calls) == passes
        assert calls[0][0] == (12 if passes == 1 else 3)


def test_wrappers_built_twice_are_one_object():
    built = [smooth(input_gradient, repetitions=5, seed=0) for _ in range(3)]
    assert built[0] is built[1] is built[2]
    assert smooth(input_gradient, 5, 0.1, 0) is built[0]  # positional, same values
    assert smooth(input_gradient, repetitions=6, seed=0) is not built[0]
    assert vargrad(input_gradient, repetitions=5, seed=0) is not built[0]
    nested = [tta(smooth(input_gradient), scales=[0.5, 2]) for _ in range(2)]
    assert nested[0] is nested[1]
    assert tta(smooth(input_gradient), scales=(0.5, 2.0)) is nested[0]
    assert tta(smooth(input_gradient), scales=(2.0, 0.5)) is not nested[0]


def test_tta_is_the_true_mean():
    x = _x(1, 4)
    _, maps = tta(pixels, scales=(0.5,), hflip=True, resize_method="nearest")(None, x)
    half = tf.image.resize(x, (2, 2), method="nearest")
    back = tf.image.resize(half[..., :1], (4, 4), method="nearest")
    # 4 passes: x, flip(x) flipped back (= x), half, flip(half) flipped back (= half)
    np.testing.assert_allclose(maps, (2 * x[..., :1] + 2 * back) / 4, atol=1e-6)


def test_tta_flips_maps_back():
    def left_half(model, inputs, indices=None, *, spatial_axis=(-3, -2)):
        x = tf.convert_to_tensor(inputs)
        maps = tf.concat([x[:, :, :2, :1], tf.zeros_like(x[:, :, 2:, :1])], 2)
        return tf.zeros((tf.shape(x)[0], 1)), maps

    x = tf.ones((1, 4, 4, 3))
    _, maps = tta(left_half, scales=(), hflip=True)(None, x)
    # The original sees the left half; the mirrored pass, flipped back, the right.
    np.testing.assert_allclose(maps[0, :, :, 0], np.full((4, 4), 0.5))


def test_tta_on_channels_first_inputs_equals_channels_last():
    def first_channel(model, inputs, indices=None, *, spatial_axis=(-3, -2)):
        x, _ = channels_last(inputs, spatial_axis)  # maps are channels-last
        return tf.reduce_mean(x, axis=(1, 2, 3))[:, None], x[..., :1] * x[..., 1:2]

    x = _x(2, 6)[:, :, :4]  # (2, 6, 4, 3): height and width differ
    wrapped = tta(first_channel, scales=(0.5, 1.5), hflip=True)
    want = wrapped(None, x)
    got = wrapped(None, tf.transpose(x, [0, 3, 1, 2]), spatial_axis=(-2, -1))
    assert got[1].shape == want[1].shape == (2, 6, 4, 1)
    np.testing.assert_allclose(got[0], want[0], atol=1e-6)
    np.testing.assert_allclose(got[1], want[1], atol=1e-6)
    # Not a law that holds by symmetry: the passes really differ from x.
    assert np.abs(want[1] - first_channel(None, x)[1]).max() > 1e-2


@pytest.fixture(scope="module")
def convolutional():
    # Exposed models run layer by layer, so they accept the rescaled inputs
    # that a functional model with a fixed input shape refuses.
    return expose(models.gap_dense(size=6), arguments=[])


def test_stacking_names_and_wrapped(convolutional):
    stacked = tta(smooth(input_gradient, 3, 0.1, seed=0), scales=(2.0,), hflip=False)
    assert stacked.__name__ == "input_gradient_smooth_tta"
    assert stacked.__wrapped__.__wrapped__ is input_gradient
    logits, maps = stacked(convolutional, _x(2), [[0], [1]])
    assert logits.shape == (2, 1) and maps.shape == (2, 6, 6, 1)


def test_compiled_equals_eager(convolutional):
    x = _x()
    model = convolutional
    wrapped = tta(smooth(input_gradient, 4, 0.2, seed=5, batch_size=3), scales=(2.0,))
    eager = wrapped(model, x, [[0], [1], [1]])
    graph = tf.function(lambda x: wrapped(model, x, [[0], [1], [1]]))(x)
    xla = tf.function(lambda x: wrapped(model, x, [[0], [1], [1]]), jit_compile=True)(x)
    for a, b, c in zip(eager, graph, xla):
        np.testing.assert_allclose(a, b, atol=1e-5)
        np.testing.assert_allclose(a, c, atol=1e-5)


def test_errors():
    with pytest.raises(
        ValueError,
        match="`repetitions` must be a positive integer. Received: repetitions=0",
    ):
        smooth(pixels, 0)
    with pytest.raises(
        ValueError, match="`noise` must be a finite non-negative number"
    ):
        smooth(pixels, noise=-1.0)
    with pytest.raises(TypeError, match="`method` must be callable"):
        smooth("gradcam")
    with pytest.raises(
        ValueError, match="`scales` must be a sequence of positive numbers"
    ):
        tta(pixels, scales=(0.5, 0))
    with pytest.raises(ValueError, match="`resize_method` must be one of"):
        tta(pixels, resize_method="cubic")
    with pytest.raises(TypeError, match="`hflip` must be a bool"):
        tta(pixels, hflip="yes")
    with pytest.raises(TypeError, match="`seed` must be an integer"):
        vargrad(pixels, seed=1.5)
